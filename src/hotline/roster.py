"""The roster: parties, their root keys, channels, and the relay's checkpoint key.

A roster is a signed note: the line ``hotline-roster/v1`` then one line of
compact JSON. It is valid only when every party it lists has signed it with
its root key. Stations and the relay refuse anything else.

``hotline-roster/v2`` (issue 16) gives every party an ML-DSA-65 root (``pq_root``)
beside its Ed25519 one, and is valid only with both signatures of every party. A /v1
roster may name ``pq_root`` for some parties (a network mid-way): their /v2 statements
then verify, under a roster that Ed25519 alone protects. Either
form may name ``min_envelope_version`` (1 or 2) and ``min_envelope_version_from`` (unix
ms, 0 by default): entries logged at or after that relay time must be at least that
version, at the relay and at every station and verifier (``check_envelope_version``).
``receipt_runs`` (true or false, false when absent) says every station of the network
reads a delivered receipt naming a run of messages (issue 15; docs/PROTOCOL.md section
7): only then do stations send them (a station of an earlier version would read a run as
a receipt for its first message only). New rosters name it true.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import hybrid
from .errors import BadSignature, Malformed, NotAuthorized
from .keys import PartyKey, check_id, parse_statement, statement_text, statement_type
from .notes import (
    Note,
    NoteSigner,
    NoteVerifier,
    make_note,
    parse_mldsa_verifier_key,
    parse_note,
    parse_verifier_key,
)
from .notes import verify_note as _verify_note
from .wire import MAX_U63

ROSTER_TYPE = "hotline-roster/v1"
ROSTER_TYPE_V2 = "hotline-roster/v2"
ENVELOPE_VERSIONS = (1, 2)
PRECEDENCES = ("FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE")
DEFAULT_DEADLINES = {"FLASH": 600, "IMMEDIATE": 1800, "PRIORITY": 3 * 3600, "ROUTINE": 24 * 3600}
LANGUAGES = ("en", "ru", "uk")
DEFAULT_LINK_TEST_SECONDS = 60
# Parse-time limits (docs/PROTOCOL.md §2): a roster is signed by every party, but its numbers
# still end in arithmetic and in stores, so each is bounded where it is read.
MAX_PARTIES = 100  # a note carries at most 100 signatures, and every party must sign
MAX_PARTIES_V2 = MAX_PARTIES // 2  # a /v2 roster: an Ed25519 and an ML-DSA-65 line each
MAX_CHANNELS = 1000
MAX_DEADLINE_SECONDS = 366 * 24 * 3600
MAX_LINK_TEST_SECONDS = 24 * 3600
MAX_LINK_DOWN_AFTER = 1000
MAX_RELAYS = 8  # independent relays (hosts) of one roster, each with its own log and key


@dataclass(frozen=True)
class Party:
    name: str
    root: NoteVerifier
    language: str
    title: str


@dataclass(frozen=True)
class Channel:
    name: str
    members: tuple[str, ...]
    languages: tuple[str, ...]
    deadlines: dict[str, int] = field(hash=False)
    link_test_seconds: int = DEFAULT_LINK_TEST_SECONDS
    link_down_after: int = 3  # missed link tests before a party is shown down


@dataclass(frozen=True)
class Roster:
    name: str
    version: int
    parties: dict[str, Party] = field(hash=False)
    channels: dict[str, Channel] = field(hash=False)
    relay_key: NoteVerifier
    note: Note = field(repr=False, compare=False)
    min_envelope_version: int = 1
    min_envelope_from_ms: int = 0
    relays: tuple[NoteVerifier, ...] = ()  # every relay (its own log); the first is relay_key
    receipt_runs: bool = False  # stations may send a delivered receipt naming a run

    def relay_names(self) -> list[str]:
        """The names of the roster's relays (their checkpoint keys' names), in roster order."""
        return [k.name for k in self.relays] if self.relays else [self.relay_key.name]

    def relay(self, name: str) -> NoteVerifier:
        """The checkpoint key of the relay called ``name`` (Malformed if the roster has none)."""
        for k in self.relays or (self.relay_key,):
            if k.name == name:
                return k
        raise Malformed(f"no relay {name!r} in roster {self.name}", field="relay")

    def check_envelope_version(self, version: int, relay_ms: int, channel: str) -> None:
        """NotAuthorized for an envelope of a version this roster no longer takes at the
        relay time ``relay_ms`` (new traffic; entries logged before stay verifiable)."""
        if version < self.min_envelope_version and relay_ms >= self.min_envelope_from_ms:
            raise NotAuthorized(
                f"envelope version {version} is refused: roster {self.name} requires version "
                f"{self.min_envelope_version} or later from {self.min_envelope_from_ms} ms",
                channel=channel,
                field="version",
            )

    def origin(self, channel: str) -> str:
        """The checkpoint origin line of a channel's log."""
        return f"hotline/{self.name}/{channel}"

    def channel(self, name: str) -> Channel:
        ch = self.channels.get(name)
        if ch is None:
            raise Malformed(f"no channel {name!r} in roster {self.name}", field="channel")
        return ch

    def channels_of(self, party: str) -> list[Channel]:
        return [c for c in self.channels.values() if party in c.members]

    def roots(self) -> dict[str, NoteVerifier]:
        return {p.name: p.root for p in self.parties.values()}

    def encode(self) -> bytes:
        return self.note.encode()


def roster_text(
    name: str,
    parties: dict[str, dict[str, str]],
    channels: dict[str, dict[str, Any]],
    relay_key: str | list[str],
    version: int = 1,
    min_envelope_version: int | None = None,
    min_envelope_from_ms: int | None = None,
    receipt_runs: bool = True,
) -> str:
    """The text every party signs. ``parties`` maps name to root key, language, title
    (and ``pq_root``, its ML-DSA-65 key: with every party's, the roster is /v2).
    ``relay_key``: one relay's key, or a list of two or more independent relays' keys
    (``relays``; the first is also written as ``relay_key``, which one-relay readers take)."""
    keys = [relay_key] if isinstance(relay_key, str) else list(relay_key)
    if not keys:
        raise Malformed("a roster names at least one relay", field="relays")
    body: dict[str, Any] = {
        "name": check_id(name, "roster"),
        "version": version,
        "relay_key": keys[0],
        "parties": parties,
        "channels": channels,
    }
    if len(keys) > 1:
        body["relays"] = keys
    if min_envelope_version is not None:
        body["min_envelope_version"] = min_envelope_version
    if min_envelope_from_ms is not None:
        body["min_envelope_version_from"] = min_envelope_from_ms
    if receipt_runs:
        body["receipt_runs"] = True
    v2 = bool(parties) and all("pq_root" in p for p in parties.values())
    return statement_text(ROSTER_TYPE_V2 if v2 else ROSTER_TYPE, body)


def sign_roster(text_or_note: str | Note, key: PartyKey | NoteSigner) -> Note:
    """Add one party's signature to the roster text (or partly signed roster)."""
    signer = key.signer if isinstance(key, PartyKey) else key
    # A text is checked as a note's would be, then signed.
    note = make_note(text_or_note) if isinstance(text_or_note, str) else text_or_note
    raw = note.text.encode()
    sigs = [signer.sign(raw)]
    pq = key.pq_signer if isinstance(key, PartyKey) else None
    if statement_type(note) == ROSTER_TYPE_V2:
        if pq is None:
            raise Malformed(f"{signer.name} has no ML-DSA-65 key to sign a /v2 roster")
        sigs.append(pq.sign(raw))
    # A party signs once per key: signing again replaces that key's line, and a rotating
    # party's current root and new root both sign the new version (keyhistory.py).
    mine = {(s.name, s.key_hash) for s in sigs}
    kept = tuple(s for s in note.signatures if (s.name, s.key_hash) not in mine)
    return Note(note.text, (*kept, *sigs))


def _bounded(value: Any, lo: int, hi: int, what: str) -> int:
    """A JSON integer in lo..hi, or Malformed naming ``what``."""
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise Malformed(f"roster {what} must be an integer in {lo}..{hi}", field=what)
    return value


def _mapping(value: Any, limit: int, what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or len(value) > limit:
        raise Malformed(f"roster {what} must be an object of at most {limit} items", field=what)
    return value


def _parse_body(note: Note) -> Roster:
    v2 = statement_type(note) == ROSTER_TYPE_V2
    body = parse_statement(note, ROSTER_TYPE_V2 if v2 else ROSTER_TYPE)
    try:
        listed = body["parties"]
        if v2 and isinstance(listed, dict) and len(listed) > MAX_PARTIES_V2:
            raise Malformed(
                f"a /v2 roster lists at most {MAX_PARTIES_V2} parties (two signatures each)",
                field="parties",
            )
        name = check_id(str(body["name"]), "roster")
        version = _bounded(body["version"], 0, MAX_U63, "version")
        relay_key = parse_verifier_key(str(body["relay_key"]))
        relays = _relays(body.get("relays"), relay_key)
        parties: dict[str, Party] = {}
        for pname, p in _mapping(body["parties"], MAX_PARTIES, "parties").items():
            check_id(pname, "party")
            lang = str(p.get("language", "en"))
            if lang not in LANGUAGES:
                raise Malformed(f"party {pname} has unknown language {lang!r}", field="language")
            root = parse_verifier_key(str(p["root"]))
            if root.name != pname:
                raise Malformed(f"root key of {pname} is named {root.name}", field="root")
            if v2 or "pq_root" in p:  # a /v1 roster may name some parties' ML-DSA roots
                pq = parse_mldsa_verifier_key(str(p["pq_root"]))
                if pq.name != pname:
                    raise Malformed(f"ML-DSA root of {pname} is named {pq.name}", field="pq_root")
                root = hybrid.HybridRoot(root.name, root.public, pq)
            parties[pname] = Party(pname, root, lang, str(p.get("title", pname)))
        channels: dict[str, Channel] = {}
        for cname, c in _mapping(body["channels"], MAX_CHANNELS, "channels").items():
            check_id(cname, "channel")
            members = tuple(str(m) for m in c["members"])
            if len(members) < 2 or len(set(members)) != len(members):
                raise Malformed(
                    f"channel {cname} needs two or more distinct members", field="members"
                )
            for m in members:
                if m not in parties:
                    raise Malformed(f"channel {cname} member {m} is not a party", field="members")
            given = _mapping(c.get("deadlines", {}), len(PRECEDENCES), "deadlines")
            deadlines = {
                **DEFAULT_DEADLINES,
                **{
                    str(k): _bounded(v, 1, MAX_DEADLINE_SECONDS, "deadlines")
                    for k, v in given.items()
                },
            }
            if set(deadlines) != set(PRECEDENCES):
                raise Malformed(f"channel {cname} has bad deadlines", field="deadlines")
            languages = tuple(
                str(x) for x in c.get("languages", [parties[m].language for m in members])
            )
            link = _bounded(
                c.get("link_test_seconds", DEFAULT_LINK_TEST_SECONDS),
                1,
                MAX_LINK_TEST_SECONDS,
                "link_test_seconds",
            )
            down = _bounded(c.get("link_down_after", 3), 1, MAX_LINK_DOWN_AFTER, "link_down_after")
            channels[cname] = Channel(cname, members, languages, deadlines, link, down)
        min_version = _bounded(
            body.get("min_envelope_version", 1), 1, max(ENVELOPE_VERSIONS), "min_envelope_version"
        )
        min_from = _bounded(
            body.get("min_envelope_version_from", 0), 0, MAX_U63, "min_envelope_version_from"
        )
        runs = body.get("receipt_runs", False)
        if not isinstance(runs, bool):
            raise Malformed("roster receipt_runs must be true or false", field="receipt_runs")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, Malformed):
            raise
        raise Malformed(f"roster is malformed: {exc}", field="roster") from exc
    return Roster(
        name, version, parties, channels, relay_key, note, min_version, min_from, relays, runs
    )


def _relays(listed: Any, first: NoteVerifier) -> tuple[NoteVerifier, ...]:
    """The roster's relays: ``relays`` (a list of keys whose first is ``relay_key``), or the
    one ``relay_key`` of a roster that names a single relay."""
    if listed is None:
        return (first,)
    if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_RELAYS:
        raise Malformed(f"roster relays must be a list of 1..{MAX_RELAYS} keys", field="relays")
    keys = tuple(parse_verifier_key(str(k)) for k in listed)
    if keys[0] != first:
        raise Malformed("the roster's first relay must be its relay_key", field="relays")
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        raise Malformed("two of the roster's relays have the same name", field="relays")
    return keys


def _signed_by(note: Note, party: Party, v2: bool) -> bool:
    try:
        if v2:
            hybrid.verify_both(note, party.root)
        else:
            _verify_note(note, [party.root])
    except (BadSignature, Malformed):
        return False
    return True


def open_roster(data: bytes) -> Roster:
    """Parse a roster and require a valid signature from every listed party."""
    note = parse_note(data)
    roster = _parse_body(note)
    v2 = statement_type(note) == ROSTER_TYPE_V2
    if v2:
        signed = {p.name for p in roster.parties.values() if _signed_by(note, p, v2)}
    else:
        signed = set(_verify_note(note, list(roster.roots().values())))
    missing = sorted(set(roster.parties) - signed)
    if missing:
        raise BadSignature(f"roster {roster.name} lacks the signature of {', '.join(missing)}")
    return roster


def unsigned_parties(data: bytes) -> list[str]:
    """Which listed parties have not yet signed (for the signing workflow)."""
    try:
        note = parse_note(data) if b"\n\n" in data else Note(data.decode(), ())
    except UnicodeDecodeError as exc:
        raise Malformed("roster is not UTF-8", field="roster") from exc
    roster = _parse_body(note)
    v2 = statement_type(note) == ROSTER_TYPE_V2
    signed = {p.name for p in roster.parties.values() if _signed_by(note, p, v2)}
    return sorted(set(roster.parties) - signed)
