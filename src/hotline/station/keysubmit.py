"""Key events this station submits, owed to every relay of the roster.

A certificate of this station's key and a revocation its party root signed (``hotline
station rotate``) must be logged by every relay: a relay that never logs a revocation
keeps the revoked key usable in its log. Each key event is owed, durably, to each relay
(``key_submission`` in the store: it survives a restart) until that relay has logged it:

- a certificate of the key the station signs with is logged by a relay when the station
  authenticates there (its hello carries it);
- a revocation is handed over in a ``revocation`` frame, each link's session sending
  what its relay is owed once nothing it posted waits for that relay's answer (what the
  old key signed is logged before the revocation that ends it), once per session: the
  relay logs a statement once, so sending it again changes nothing.

Either is owed no more once the station has taken it from that relay's log (verified
like every entry), not on the relay's word: a relay that answers ``ok`` and leaves the
event out is sent it again at every session, and named by the path audit (pathaudit.py:
key events are entries like any other).
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..errors import Malformed
from ..keys import StationCertificate, parse_certificate, parse_revocation
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
