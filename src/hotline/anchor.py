"""Trust anchors: what an offline verifier pins before it believes a transcript.

A transcript carries its own roster, so on its own it proves consistency only: anyone
can make keys for every party and the relay and write a log that holds together. The
verifier pins what it got out of band: the roster as distributed (its hash), or the root
keys of parties it knows (their fingerprints). The transcript's roster must match every
pin. Pinning one party's root trusts the roster that party signed, since a roster is
valid only with the signature of every party it lists.

- roster hash: SHA-256 of the roster note's bytes (text and every signature), hex; the
  same hash stations and the relay compare when a station connects.
- root fingerprint: SHA-256 of the party root key's text form ``name+hash+key`` (the
  line of ``party.pub``, as ``hotline party init`` prints it), hex. For a party with an
  ML-DSA-65 root too, of both text forms one after the other with nothing between
  (``tr -d '\n' < party.pub | sha256sum``): a pin then holds against a forger of either.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass

from .errors import Malformed
from .hybrid import pq_of
from .notes import NoteVerifier
from .roster import Roster

HEX_DIGITS = 64


def roster_hash(roster: Roster) -> str:
    """The roster's hash (hex SHA-256 of its note bytes)."""
    return hashlib.sha256(roster.encode()).hexdigest()


def root_fingerprint(root: NoteVerifier) -> str:
    """A party root key's fingerprint (hex SHA-256 of its text form, and its ML-DSA-65
    key's after it when it has one)."""
    pq = pq_of(root)
    text = root.encode() + (pq.encode() if pq is not None else "")
    return hashlib.sha256(text.encode()).hexdigest()


def parse_digest(text: str, what: str) -> str:
    """A hex SHA-256 as typed (any case, ``:`` or spaces between groups allowed)."""
    value = "".join(c for c in text.strip().lower() if c not in ": ")
    if len(value) != HEX_DIGITS or any(c not in string.hexdigits for c in value):
        raise Malformed(f"{what} must be {HEX_DIGITS} hex digits (a SHA-256), got {text!r}")
    return value


@dataclass(frozen=True)
class Anchor:
    """The pins: roster hashes and (party, root fingerprint) pairs. Empty: no anchor."""

    rosters: tuple[str, ...] = ()
    roots: tuple[tuple[str, str], ...] = ()

    @property
    def given(self) -> bool:
        return bool(self.rosters or self.roots)

    def pins(self) -> list[str]:
        """What is pinned, in words, for the report."""
        return [f"roster {h}" for h in self.rosters] + [f"root of {p} {f}" for p, f in self.roots]

    def mismatches(self, roster: Roster) -> list[str]:
        """Every pin the roster does not match, as a reason (none: anchored)."""
        found = roster_hash(roster)
        out = [
            f"the transcript's roster {found} is not the pinned roster {pinned}"
            for pinned in self.rosters
            if pinned != found
        ]
        for party, pinned in self.roots:
            if party not in roster.parties:
                out.append(f"the transcript's roster has no party {party} (its root is pinned)")
                continue
            have = root_fingerprint(roster.parties[party].root)
            if have != pinned:
                out.append(f"root key of {party} is {have}, not the pinned {pinned}")
        return out
