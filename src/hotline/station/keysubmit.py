"""Key events this station submits, owed to every relay of the roster.

A certificate of this station's key and a revocation its party root signed (``hotline
station rotate``) must be logged by every relay: a relay that never logs a revocation
keeps the revoked key usable in its log. Each key event is owed, durably, to each relay
(``key_submission`` in the store: it survives a restart) until that relay has logged it:

- a certificate of the key the station signs with is logged by a relay when the station
  authenticates there (its hello carries it);
- a certificate of a key held before the current one (a key rotated again while a relay
  was down) is logged in a short session of that key (register.py);
- a revocation is handed over in a ``revocation`` frame, each link's session sending
  what its relay is owed (``due``) in the order submitted, once per session (the relay
  logs a statement once, so sending it again changes nothing), and only once that relay
  has logged the revoked key's certificate and taken every envelope this station made
  before the revocation was submitted (the watermark: what the old key signed is logged
  before the revocation that ends it; later envelopes, signed with the new key, do not
  hold it back, so a link never idle hands it over all the same).

Either is owed no more once the station has taken it from that relay's log (verified
like every entry, and holding there: a revocation logged before the certificate it
revokes counts for nothing in that log), not on the relay's word: a relay that answers
``ok`` and leaves the event out is sent it again at every session, and named by the path
audit (pathaudit.py: key events are entries like any other).
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..errors import Malformed
from ..keys import StationCertificate, StationKey, parse_certificate, parse_revocation
from .state import Station
from .store import KeySubmission

KINDS = ("certificate", "revocation")
REQUEST_PREFIX = "key:"  # a revocation frame's id: "key:" and the event's hash in hex


def submit(st: Station, kind: str, data: bytes) -> bytes:
    """Owe the key event ``data`` (of this station's own party) to every relay; its hash."""
    root = st.roster.parties[st.party].root
    if kind == "revocation":
        party = parse_revocation(data, root).party
    elif kind == "certificate":
        party = parse_certificate(data, root).party
    else:
        raise Malformed(f"a station submits a certificate or a revocation, not {kind!r}")
    if party != st.party:
        raise Malformed(f"{st.ident} submits key events of its own party only", field="party")
    return _owe(st, kind, data)


def submit_certificate(st: Station, cert: StationCertificate) -> None:
    """Owe the certificate of the key the station signs with to every relay."""
    _owe(st, "certificate", cert.encode())


def _owe(st: Station, kind: str, data: bytes) -> bytes:
    """Owe ``data`` to every relay but those whose log (as taken here) holds it already."""
    digest = hashlib.sha256(data).digest()
    st.store.submit_key_event(st.relays, kind, data, digest, st.now_ms())
    for channel in st.channels:
        for at in st.store.logged_at(channel, digest):
            seen(st, at, digest)
    return digest


def seen(st: Station, at: int, digest: bytes) -> None:
    """The station took the key event ``digest`` from a relay's log (qualified index
    ``at``): that relay is owed it no more."""
    st.store.key_event_logged(st.relay_at(at), digest, st.now_ms())


def owed(st: Station, relay: str) -> list[KeySubmission]:
    """The revocations ``relay`` has not logged yet, in the order they were submitted."""
    return [s for s in st.store.key_submissions(relay, pending=True) if s.kind == "revocation"]


def due(st: Station, relay: str) -> list[KeySubmission]:
    """The revocations that may go to ``relay`` now, in the order they were submitted:
    owed (``owed``), whose key's certificate ``relay`` has logged (a certificate of it
    this station submitted is no longer pending there), and after which nothing this
    station posted before the revocation was submitted still waits for ``relay`` to take
    it (the watermark: what the old key signed is logged first; later posts, signed with
    the new key, do not hold it back)."""
    pending = st.store.key_submissions(relay, pending=True)
    uncertified = {
        parse_certificate(s.data, st.roster.parties[st.party].root).signing
        for s in pending
        if s.kind == "certificate"
    }
    only = None if len(st.relays) == 1 else relay
    out: list[KeySubmission] = []
    for s in pending:
        if s.kind != "revocation":
            continue
        if st.store.untaken_before(only, s.queued_ms):
            break  # and every later one: submitted later, its watermark is no lower
        if parse_revocation(s.data, st.roster.parties[st.party].root).signing in uncertified:
            continue  # its certificate first (certificates_owed)
        out.append(s)
    return out


def certificates_owed(st: Station, relay: str) -> list[tuple[StationKey, KeySubmission]]:
    """The certificates of keys this station held before its current one that ``relay``
    has not logged yet (a key rotated again while that relay was down), each with its
    key: the relay logs a certificate only in a session in which its key answers the
    challenge. The current key's is logged by the link's own hello. A certificate whose
    key is no longer held (``retired/`` emptied) stays pending, and so does its key's
    revocation at that relay."""
    held = {k.signing_public: k for k in st.retired}
    root = st.roster.parties[st.party].root
    out: list[tuple[StationKey, KeySubmission]] = []
    for s in st.store.key_submissions(relay, pending=True):
        if s.kind != "certificate":
            continue
        signing = parse_certificate(s.data, root).signing
        key = held.get(signing)
        if key is not None and signing != st.key.signing_public:
            out.append((key, s))
    return out


def certificate_missing(st: Station, relay: str, digest: bytes) -> None:
    """``relay`` refused the revocation ``digest`` for want of the certificate of the key
    it revokes (that key never met it: the relay was down for all of its time): if it is
    one of this station's own keys, owe ``relay`` that certificate, handed over first
    (``certificates_owed``, from ``retired/``) and then the revocation again."""
    root = st.roster.parties[st.party].root
    for s in st.store.key_submissions(relay, pending=True):
        if s.hash != digest or s.kind != "revocation":
            continue
        revocation = parse_revocation(s.data, root)
        if revocation.ident != st.ident:
            return
        for cert in st.keyring.certificates_of(st.ident):
            if cert.signing == revocation.signing:
                data = cert.encode()
                st.store.submit_key_event(
                    [relay], "certificate", data, hashlib.sha256(data).digest(), st.now_ms()
                )


def request_id(digest: bytes) -> str:
    return REQUEST_PREFIX + digest.hex()


def of_request(request_id: object) -> bytes | None:
    """The key event a request id "key:HEX" names, if it names one."""
    if not isinstance(request_id, str) or not request_id.startswith(REQUEST_PREFIX):
        return None
    try:
        digest = bytes.fromhex(request_id[len(REQUEST_PREFIX) :])
    except ValueError:
        return None
    return digest if len(digest) == 32 else None


def view(st: Station) -> list[dict[str, Any]]:
    """Every key event submitted, per relay: logged (when) or pending (the last refusal)."""
    return [
        {
            "relay": s.relay,
            "kind": s.kind,
            "hash": s.hash.hex(),
            "queued_ms": s.queued_ms,
            "logged_ms": s.done_ms,
            "pending": s.done_ms is None,
            "error": s.error,
        }
        for s in st.store.key_submissions()
    ]
