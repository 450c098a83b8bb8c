"""Other stations' certificates and revocations, as the relay introduces them.

Learnt by the key ring to know whom to seal to; never what to accept: that follows the
key events of each log, in log order (receive.py, keyhistory.py)."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import HotlineError
from ..keys import Revocation, StationCertificate
from . import outbox, receive
from .alarms import Alarm, AlarmKind
from .state import Station
from .store import DueReceipt


def add_statements(st: Station, certificates: list[bytes], revocations: list[bytes]) -> int:
    """Learn certificates and revocations (each checked against the party roots).

    Returns how many certificates were new to the keyring's checks; one that fails
    raises an alarm with its bytes as evidence. Entries held for want of a certificate
    are retried then, and the receipts they are owed sent."""
    with st.store.transaction():
        added = _learn(st, "certificate", certificates, st.keyring.add_certificate)
        _learn(st, "revocation", revocations, st.keyring.add_revocation)
    release_held(st)
    outbox.send_receipts(st)
    return added


def release_held(st: Station) -> None:
    """Take in the entries that waited for a certificate now known, in log order."""
    for channel in st.channels:
        with st.alarms.deferred(), st.store.transaction():
            for m in receive.release_held(st, channel):
                # The checkpoint of the log it stands in (each relay's log, its own key).
                note = st.note_of_log_at(channel, m.index)
                st.store.owe_receipt(DueReceipt(channel, m.index, m.hash, int(m.precedence), note))


def _learn(
    st: Station,
    kind: str,
    statements: list[bytes],
    add: Callable[[bytes], StationCertificate | Revocation],
) -> int:
    learnt = 0
    for data in statements:
        try:
            statement = add(data)
        except HotlineError as exc:
            st.alarm(
                Alarm(
                    AlarmKind.BAD_CERTIFICATE,
                    "bad-statement",
                    evidence=data,
                    params={"statement": kind, "detail": str(exc)},
                )
            )
            continue
        st.store.put_statement(kind, statement.signing, data)
        learnt += 1
    return learnt
