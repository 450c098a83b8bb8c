"""The path audit (issue 13 part 2): each relay must log every envelope the station knows,
in the sender's order, and answer; what one relay leaves out is named with the entry."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hotline.station.alarms import AlarmKind
from hotline.station.pathaudit import KEY_EVENT, Logged, PathAudit, Raised
from hotline.station.store import StationStore

RELAYS = ("relay.ae", "relay.ch")


def _h(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest()


def _log(audit: PathAudit, relay: str, index: int, seq: int, now: int, sender: str = "us-1"):  # type: ignore[no-untyped-def]
    return audit.logged(Logged(relay, "us-ru", index, _h(seq), sender, seq), now)


def test_an_omission_is_named_after_the_bound_and_only_then() -> None:
    audit = PathAudit(RELAYS, bound_ms=1000)
    for seq in range(1, 4):
        assert _log(audit, "relay.ae", seq - 1, seq, 0) == []
        if seq != 2:  # relay.ch silently drops envelope 2
            assert _log(audit, "relay.ch", seq + 10, seq, 10) == []
    audit.contact("relay.ae", 995)  # both answer: only the omission is due
    assert audit.check(999) == []
    (alarm,) = audit.check(1000)
    assert alarm.kind == AlarmKind.PATH and alarm.text == "path-omits"
    assert alarm.params["relay"] == "relay.ch" and alarm.params["seen"] == "relay.ae"
    assert alarm.params["hash"] == _h(2).hex()[:16] and alarm.index == 1
    evidence = json.loads(alarm.evidence or b"")
    assert evidence["logged"] == {"relay.ae": 1} and evidence["seq"] == 2
    assert audit.check(5000) == []  # raised once
    assert audit.missing("relay.ch") == [_h(2)] and audit.where(_h(2)) == {"relay.ae": 1}


def test_a_different_order_of_one_senders_envelopes_is_named() -> None:
    audit = PathAudit(RELAYS)
    _log(audit, "relay.ae", 0, 1, 0)
    _log(audit, "relay.ae", 1, 2, 0)
    assert _log(audit, "relay.ch", 0, 2, 0) == []
    (alarm,) = _log(audit, "relay.ch", 1, 1, 0)
    assert alarm.text == "path-order" and alarm.params["relay"] == "relay.ch"


def test_one_sequence_number_naming_two_envelopes_is_named() -> None:
    audit = PathAudit(RELAYS)
    audit.logged(Logged("relay.ae", "us-ru", 0, _h(1), "us-1", 1), 0)
    (alarm,) = audit.logged(Logged("relay.ch", "us-ru", 0, _h(99), "us-1", 1), 0)
    assert alarm.text == "path-chain" and alarm.params["seq"] == 1


def test_a_relay_that_stops_answering_is_named() -> None:
    audit = PathAudit(RELAYS, bound_ms=1000)
    audit.contact("relay.ae", 0)
    audit.contact("relay.ch", 0)
    audit.contact("relay.ae", 900)
    assert audit.check(999) == []
    (alarm,) = audit.check(1500)
    assert alarm.text == "path-silent" and alarm.params["relay"] == "relay.ch"
    assert audit.check(1600) == []


@given(
    n=st.integers(1, 30),
    dropped=st.sets(st.integers(0, 29), max_size=5),
)
def test_property_exactly_the_dropped_entries_are_named(n: int, dropped: set[int]) -> None:
    audit = PathAudit(RELAYS, bound_ms=100)
    ch_index = 0
    for seq in range(n):
        assert _log(audit, "relay.ae", seq, seq, 0) == []
        if seq not in dropped:
            assert _log(audit, "relay.ch", ch_index, seq, 0) == []
            ch_index += 1
    named = {a.params["hash"] for a in audit.check(100) if a.text == "path-omits"}
    assert named == {_h(s).hex()[:16] for s in dropped if s < n}
    assert all(a.params["relay"] == "relay.ch" for a in audit.check(100))


def _key_event(audit: PathAudit, relay: str, index: int, n: int, now: int):  # type: ignore[no-untyped-def]
    return audit.logged(Logged(relay, "us-ru", index, _h(1000 + n), KEY_EVENT, 0), now)


def test_a_relay_that_leaves_out_a_key_event_is_named() -> None:
    """A revocation relay.ch never logs would leave the revoked key usable in its log:
    key events are entries like envelopes, compared by hash (no sender, no chain)."""
    audit = PathAudit(RELAYS, bound_ms=1000)
    for n in range(3):  # three key events, all with seq 0: no chain or order alarm
        assert _key_event(audit, "relay.ae", n, n, 0) == []
        if n != 2:  # relay.ch leaves out the third (the revocation)
            assert _key_event(audit, "relay.ch", 5 + n, n, 0) == []
    audit.contact("relay.ae", 995)
    audit.contact("relay.ch", 995)
    (alarm,) = audit.check(1000)
    assert alarm.text == "path-omits-key" and alarm.params["relay"] == "relay.ch"
    assert alarm.params["hash"] == _h(1002).hex()[:16] and alarm.index == 2
    assert audit.missing("relay.ch") == [_h(1002)]


def test_what_was_raised_is_not_raised_again_by_the_next_audit_nor_forgotten() -> None:
    """A restart rebuilds the audit from the stored logs; given what the one before
    raised (the store keeps it), it raises nothing twice and still shows it."""
    first = PathAudit(RELAYS, bound_ms=1000)
    _log(first, "relay.ae", 0, 1, 0)
    first.contact("relay.ae", 1000)
    first.contact("relay.ch", 1000)
    (alarm,) = first.check(1000)
    assert alarm.text == "path-omits"
    (raised,) = first.take_changes()
    assert (raised.what, raised.relay, raised.hash) == ("omits", "relay.ch", _h(1))
    assert raised.repaired_ms is None and first.take_changes() == []
    # The restart: the same log, what was raised given back.
    second = PathAudit(RELAYS, bound_ms=1000, raised=[raised])
    _log(second, "relay.ae", 0, 1, 5000)
    for relay in RELAYS:
        second.contact(relay, 8999)
    assert second.check(9000) == [] and second.take_changes() == []
    assert second.omissions("relay.ch") == [raised]
    # relay.ch logs it after all: repaired, shown so, and kept for the next audit.
    _log(second, "relay.ch", 0, 1, 9500)
    (repaired,) = second.take_changes()
    assert repaired.repaired_ms == 9500 and second.omissions("relay.ch") == [repaired]
    third = PathAudit(RELAYS, bound_ms=1000, raised=[repaired])
    _log(third, "relay.ae", 0, 1, 20000)
    _log(third, "relay.ch", 0, 1, 20000)
    for relay in RELAYS:
        third.contact(relay, 29999)
    assert third.check(30000) == [] and third.take_changes() == []
    assert third.omissions() == [repaired]


def test_the_store_keeps_what_the_audit_raised(tmp_path: Path) -> None:
    store = StationStore(tmp_path / "station.db")
    raised = Raised("omits", "relay.ch", _h(1), "us-ru", 3, 1000)
    store.put_path_alarm(raised)
    store.put_path_alarm(raised)  # once
    store.put_path_alarm(replace(raised, repaired_ms=2000))
    store.put_path_alarm(replace(raised, repaired_ms=3000))  # repaired once, when first
    store.close()
    again = StationStore(tmp_path / "station.db")
    assert again.path_alarms() == [replace(raised, repaired_ms=2000)]
    again.close()
