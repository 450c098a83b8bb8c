"""Other stations' certificates and revocations, as the relay introduces them."""

from __future__ import annotations

from ..errors import HotlineError
from .alarms import Alarm, AlarmKind
from .state import Station


def add_statements(st: Station, certificates: list[bytes], revocations: list[bytes]) -> int:
    """Learn certificates and revocations (each checked against the party roots).

    Returns how many certificates were new to the keyring's checks; one that fails
    raises an alarm with its bytes as evidence."""
    added = 0
    with st.store.transaction():
        for data in certificates:
            try:
                cert = st.keyring.add_certificate(data)
            except HotlineError as exc:
                st.alarm(
                    Alarm(
                        AlarmKind.BAD_CERTIFICATE,
                        f"relay served a certificate that fails: {exc}",
                        evidence=data,
                    )
                )
                continue
            st.store.put_statement("certificate", cert.signing, data)
            added += 1
        for data in revocations:
            try:
                rev = st.keyring.add_revocation(data)
            except HotlineError as exc:
                st.alarm(
                    Alarm(
                        AlarmKind.BAD_CERTIFICATE,
                        f"relay served a revocation that fails: {exc}",
                        evidence=data,
                    )
                )
                continue
            st.store.put_statement("revocation", rev.signing, data)
    return added
