"""`hotline verify` on every core: the envelope signatures, checked ahead in a process pool.

Checking one signature per entry (Ed25519, or Ed25519 and ML-DSA-65 for a version-2
envelope) is most of the time ``verify`` takes. Here the entries are cut into chunks; a
pool of processes parses each envelope and checks its signature against the signing keys
that the log's certificates (key events) give its sender, and returns the (key,
signature, SHA-256 of the signed bytes) triples that verify (a hybrid key is its Ed25519
key then its ML-DSA-65 key). With several relays, every relay's log is checked ahead,
the first relay's first (the serial pass's order), an envelope several logs hold once.
The serial pass of ``transcript.verify`` then runs
unchanged, every check in its order, except that ``StationCertificate.verify`` (and
``verify_hybrid``) answers a proven triple without redoing the
arithmetic (``keys.proven_signatures``). So the report is the same as with one worker,
byte for byte: a triple is proven only if the arithmetic says it verifies, and whether
that certificate may sign there (validity, revocation, chain, place in the log) is still
decided by the serial pass. A signature not proven ahead (a tampered one, or one by a
key only the log introduces) is simply checked there, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import envelope as env_mod
from . import hybrid
from .errors import HotlineError
from .keys import KeyRing, proven_signatures
from .notes import unb64
from .roster import open_roster
from .transcript import MULTI_FORMAT

log = logging.getLogger("hotline.verify")

Triple = tuple[bytes, bytes, bytes]
# station ident -> the signing keys its certificates name: Ed25519, and ML-DSA-65 for /v2
Candidates = dict[str, list[tuple[bytes, bytes | None]]]

CHUNKS_PER_WORKER = 4  # a few chunks each, so that a slow process does not hold up the rest
MIN_ENTRIES = 2000  # below this, starting the processes costs more than it saves


def default_workers() -> int:
    """Every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def workers_for(doc: Any, asked: int) -> int:
    """How many processes to verify ``doc`` with: ``asked`` (0: every core), but one for
    a transcript too short to gain from more (counting every relay's entries)."""
    if sum(len(entries) for entries in _sections(doc)) < MIN_ENTRIES:
        return 1
    return asked or default_workers()


def _sections(doc: Any) -> list[list[Any]]:
    """The entries of every relay's log the transcript holds, in the order the serial
    pass checks them: the first relay's, then each other relay's (``relays``, in the
    several-relays format)."""
    if not isinstance(doc, dict):
        return []
    parts = [doc]
    more = doc.get("relays") if doc.get("format") == MULTI_FORMAT else None
    parts += [p for p in more if isinstance(p, dict)] if isinstance(more, list) else []
    return [e for p in parts if isinstance(e := p.get("entries"), list)]


def candidates(doc: Any) -> Candidates:
    """The signing keys of each station, from the certificates among the log's key events
    that verify under the transcript's roster (nothing, if the roster does not open: the
    serial pass says why). Where each may sign is still the serial pass's to decide."""
    out: Candidates = {}
    try:
        roster = open_roster(str(doc["roster"]).encode())
        ring = KeyRing(roster.roots())
    except (HotlineError, KeyError, TypeError, ValueError):
        return out
    for item in (item for entries in _sections(doc) for item in entries):
        if not isinstance(item, dict) or item.get("kind") != "key_event":
            continue
        try:
            cert = ring.check_certificate(unb64(str(item.get("envelope")), "envelope"))
        except (HotlineError, ValueError):
            continue
        keys = out.setdefault(cert.ident, [])
        if (cert.signing, cert.pq_signing) not in keys:
            keys.append((cert.signing, cert.pq_signing))
    return out


def prove_chunk(encoded: list[Any], keys: Candidates) -> list[Triple]:
    """The envelope signatures of these entries that verify under a candidate key."""
    out: list[Triple] = []
    for text in encoded:
        try:
            env = env_mod.parse(unb64(text, "envelope"))
        except Exception:
            continue
        digest = hashlib.sha256(env.signed_part).digest()
        for signing, pq_signing in keys.get(env.sender, ()):
            if env.version == env_mod.VERSION_V2:
                if pq_signing is None or not hybrid.verify(
                    signing, pq_signing, env.signed_part, env.signature
                ):
                    continue
                out.append((signing + pq_signing, env.signature, digest))
                break
            try:
                Ed25519PublicKey.from_public_bytes(signing).verify(env.signature, env.signed_part)
            except (InvalidSignature, ValueError):
                continue
            out.append((signing, env.signature, digest))
            break
    return out


class Proofs:
    """The pool's answers, chunk after chunk, as the serial pass asks for them.

    The serial pass checks entries in order and the chunks come back in order, so a
    signature not yet known waits for the next chunk, while the later chunks are still
    being checked on the other cores; once every chunk is in, it is simply not proven.
    """

    def __init__(self, chunks: Iterator[list[Triple]]) -> None:
        self._chunks = chunks
        self._known: set[Triple] = set()
        self._done = False

    def holds(self, signing: bytes, signature: bytes, digest: bytes) -> bool:
        triple = (signing, signature, digest)
        while triple not in self._known and not self._done:
            try:
                self._known.update(next(self._chunks))
            except StopIteration:
                self._done = True
            except Exception:
                log.warning("signature pool failed; checking the rest in this process")
                self._done = True
        return triple in self._known

    def drain(self) -> set[Triple]:
        """Everything proven (waiting for every chunk)."""
        self._known.update(t for chunk in self._chunks for t in chunk)
        self._done = True
        return self._known


# What the pool's processes read: set before they are forked, so never pickled.
_ENCODED: list[Any] = []
_KEYS: Candidates = {}


def _prove_range(start: int, stop: int) -> list[Triple]:
    return prove_chunk(_ENCODED[start:stop], _KEYS)


def _encoded(doc: Any) -> list[Any]:
    """Every relay's envelopes, in the serial pass's order, each once (the same envelope
    in several relays' logs has one signature to check)."""
    seen: set[str] = set()
    out: list[Any] = []
    for entries in _sections(doc):
        for e in entries:
            text = e.get("envelope") if isinstance(e, dict) else None
            if isinstance(text, str):
                if text in seen:
                    continue
                seen.add(text)
            out.append(text)
    return out


@contextlib.contextmanager
def proven_for(doc: Any, workers: int, chunk: int | None = None) -> Iterator[Proofs]:
    """A block in which the transcript's envelope signatures are being checked on
    ``workers`` processes (``chunk`` entries at a time; by default a few chunks per
    worker), and ``StationCertificate.verify`` takes their answers."""
    global _ENCODED, _KEYS
    _ENCODED, _KEYS = _encoded(doc), candidates(doc)
    n = len(_ENCODED) if _KEYS else 0
    size = chunk or max(1, math.ceil(n / (workers * CHUNKS_PER_WORKER)))
    starts = range(0, n, size)
    try:
        # Forked where the platform can (the inputs are inherited, not pickled).
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            if "fork" not in methods:  # each process gets its inputs pickled instead
                chunks = pool.map(
                    prove_chunk, [_ENCODED[i : i + size] for i in starts], [_KEYS] * len(starts)
                )
            else:
                chunks = pool.map(_prove_range, starts, [i + size for i in starts])
            proofs = Proofs(chunks)
            with proven_signatures(proofs):
                yield proofs
    finally:
        _ENCODED, _KEYS = [], {}
