"""A channel's key history, in log order: which station key may sign at which position.

Certificates and revocations are *key events*, entries of the channel's own log (leaf
kind 0x03, leaf.py), so every member sees the same key history in the same order and a
transcript cannot leave one out: its checkpoints cover them. The rule, the same for the
relay's logs, every station and ``hotline verify``:

    an envelope at index i is acceptable only if a certificate for its signing key
    (party/station/key together, signed by that party's root) is logged at an index < i
    of the same log, no revocation of that key is logged at an index < i, and the
    entry's signed relay time lies within the certificate's not_before..not_after.

A revocation's ``revoked_at`` is shown, never used: a revocation takes effect at its
position in the log, never earlier, so a party cannot disown what it already signed
and had logged.

A third key event is a new roster version (party root rotation): newer than the one in
force, of the same network, signed by every party of it with its *current* root as
well as by every party of the new one (roster.py), leaving this channel's members and
the relay's key as they are. From its position on, statements are checked with the new
roots; certificates taken before it stay as they were. Pure: no store, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .envelope import Envelope, signed_by
from .errors import BadSignature, KeyNotValid, Malformed, NotAuthorized, RevokedKey, UnknownKey
from .hybrid import pq_of, verify_both
from .keys import (
    CERT_TYPE,
    CERT_TYPE_V2,
    REVOCATION_TYPE,
    REVOCATION_TYPE_V2,
    Revocation,
    StationCertificate,
    parse_certificate,
    parse_revocation,
    parse_statement,
)
from .notes import NoteVerifier, parse_note, verify_note
from .roster import ROSTER_TYPE, ROSTER_TYPE_V2, Roster, open_roster

Statement = StationCertificate | Revocation | Roster

_TYPES = (
    CERT_TYPE,
    CERT_TYPE_V2,
    REVOCATION_TYPE,
    REVOCATION_TYPE_V2,
    ROSTER_TYPE,
    ROSTER_TYPE_V2,
)


def statement_type(data: bytes) -> str:
    """The type line of a key event's statement (Malformed for anything else)."""
    text = parse_note(data).text
    kind = text.split("\n", 1)[0]
    if kind not in _TYPES:
        raise Malformed(f"a key event must be one of {', '.join(_TYPES)}", field="statement")
    return kind


@dataclass(frozen=True)
class KeyEvent:
    """One key event of the log, where it stands."""

    index: int
    relay_ms: int
    statement: Statement

    @property
    def kind(self) -> str:
        s = self.statement
        if isinstance(s, Roster):
            return "roster"
        return "certificate" if isinstance(s, StationCertificate) else "revocation"

    def describe(self) -> str:
        s = self.statement
        if isinstance(s, Roster):
            return f"#{self.index} roster {s.name} v{s.version} (party roots from here on)"
        text = f"#{self.index} {self.kind} of {s.ident} key {s.signing.hex()[:16]}"
        if isinstance(s, Revocation):
            text += f" ({s.reason}; says revoked_at {s.revoked_at}, takes effect here)"
        return text


class KeyHistory:
    """The key events of one channel's log, taken in log order."""

    def __init__(
        self,
        roots: Mapping[str, NoteVerifier],
        members: frozenset[str],
        roster: Roster | None = None,
    ) -> None:
        self.roots = dict(roots)
        self.members = members
        self.roster = roster  # the one in force (None: roster events are refused)
        self.events: list[KeyEvent] = []
        self._certified: dict[tuple[str, bytes], tuple[int, StationCertificate]] = {}
        self._revoked: dict[tuple[str, bytes], int] = {}

    def _root(self, data: bytes, kind: str) -> NoteVerifier:
        """The root of the party the statement names (read only to pick the root: the
        parser then refuses a statement signed by another)."""
        party = parse_statement(parse_note(data), kind).get("party")
        root = self.roots.get(party) if isinstance(party, str) else None
        if root is None:
            raise UnknownKey(f"a key event names party {party!r}, not in the roster", field="party")
        return root

    def take(self, data: bytes, *, index: int, relay_ms: int) -> KeyEvent:
        """Take the key event logged at ``index``; raise (and change nothing) if it is
        not one: a bad signature, another party's root, a party not a member of the
        channel, a revocation of a key not certified before it in this log."""
        if self.events and index <= self.events[-1].index:
            raise Malformed(
                f"key event #{index} comes after #{self.events[-1].index}", field="index"
            )
        kind = statement_type(data)
        statement: Statement
        if kind in (ROSTER_TYPE, ROSTER_TYPE_V2):
            return self._take_roster(data, index, relay_ms)
        if kind in (CERT_TYPE, CERT_TYPE_V2):
            statement = parse_certificate(data, self._root(data, kind))
        else:
            statement = parse_revocation(data, self._root(data, kind))
        if statement.party not in self.members:
            raise NotAuthorized(f"{statement.party} is not a member of this channel", field="party")
        key = (statement.ident, statement.signing)
        if isinstance(statement, StationCertificate):
            self._certified.setdefault(key, (index, statement))
        else:
            if key not in self._certified:
                raise UnknownKey(
                    f"revocation by {statement.party} names a key of {statement.ident} that "
                    "no certificate before it in this log certifies",
                    field="signing",
                )
            self._revoked.setdefault(key, index)
        event = KeyEvent(index, relay_ms, statement)
        self.events.append(event)
        return event

    def _take_roster(self, data: bytes, index: int, relay_ms: int) -> KeyEvent:
        current = self.roster
        if current is None:
            raise Malformed("no roster is in force to follow", field="roster")
        new = open_roster(data)  # every party of it signed, with its new root
        if data == current.encode():  # the one in force (a station given it already)
            event = KeyEvent(index, relay_ms, current)
            self.events.append(event)
            return event
        if new.name != current.name or new.relay_key != current.relay_key:
            raise Malformed(
                f"roster {new.name} v{new.version} is of another network or relay", field="roster"
            )
        if new.version <= current.version:
            raise Malformed(
                f"roster v{new.version} is not newer than v{current.version}", field="version"
            )
        signed = {p for p, root in self.roots.items() if _signed_by_current(new, root)}
        missing = sorted(set(current.parties) - signed)
        if missing:
            raise BadSignature(
                f"roster v{new.version} lacks the signature of the current root of "
                f"{', '.join(missing)}",
                field="roster",
            )
        channel = [c for c in new.channels.values() if frozenset(c.members) == self.members]
        if not channel:
            raise Malformed(f"roster v{new.version} changes this channel's members", field="roster")
        self.roster, self.roots = new, dict(new.roots())
        event = KeyEvent(index, relay_ms, new)
        self.events.append(event)
        return event

    def certified_at(self, cert: StationCertificate) -> int | None:
        held = self._certified.get((cert.ident, cert.signing))
        return held[0] if held else None

    def certificates(self, ident: str) -> list[StationCertificate]:
        """Every certificate of station ``ident`` this log holds, wherever it is."""
        return [c for (i, _), (_, c) in self._certified.items() if i == ident]

    def revoked_at(self, cert: StationCertificate) -> int | None:
        """The index of the revocation of this key, if one is logged."""
        return self._revoked.get((cert.ident, cert.signing))

    def usable(self, ident: str, *, index: int, relay_ms: int) -> list[StationCertificate]:
        """Certificates of ``ident`` that may sign the entry at ``index`` logged at
        ``relay_ms``. Raises UnknownKey, KeyNotValid or RevokedKey naming why none may."""
        certs = [c for (i, _), (pos, c) in self._certified.items() if i == ident and pos < index]
        if not certs:
            raise UnknownKey(
                f"no certificate of {ident} is logged before entry #{index}", field="key"
            )
        at = relay_ms // 1000
        valid = [c for c in certs if c.not_before <= at < c.not_after]
        if not valid:
            raise KeyNotValid(f"no certificate of {ident} is valid at {at}", field="key")
        live = [c for c in valid if (r := self.revoked_at(c)) is None or r > index]
        if not live:
            where = min(r for c in valid if (r := self.revoked_at(c)) is not None)
            raise RevokedKey(
                f"the key of {ident} is revoked by entry #{where}, before entry #{index}",
                field="key",
            )
        return live

    def verify(self, env: Envelope, *, index: int, relay_ms: int) -> StationCertificate:
        """The certificate whose key signed ``env``, logged at ``index`` and ``relay_ms``."""
        usable = self.usable(env.sender, index=index, relay_ms=relay_ms)
        return signed_by(env, usable, f"logged before entry #{index}")

    def witnesses(self, size: int, at_s: int) -> list[StationCertificate]:
        """Station keys that may cosign a checkpoint of ``size`` signed at ``at_s``:
        certified in this log, not revoked among its first ``size`` entries, valid then."""
        return [
            c
            for _, c in self._certified.values()
            if c.not_before <= at_s < c.not_after
            and ((r := self.revoked_at(c)) is None or r >= size)
        ]


def _signed_by_current(new: Roster, root: NoteVerifier) -> bool:
    """Whether the party whose root is ``root`` signed ``new``: with both its Ed25519 and
    ML-DSA-65 keys when it has both (post-quantum roots), else with its Ed25519 key."""
    try:
        if pq_of(root) is not None:
            verify_both(new.note, root)
            return True
        return root.name in verify_note(new.note, [root])
    except BadSignature:
        return False
