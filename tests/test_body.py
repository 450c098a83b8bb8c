"""Bodies are typed values: any bytes give one body or Malformed, never another exception."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline import body
from hotline.errors import HotlineError, Malformed

EXAMPLES: list[body.Body] = [
    body.Text("ru", "Подтвердите намерения."),
    body.Form("incident-report", 1, {"drones": 183, "at": {"lat": 47.5, "lon": 34.5}}),
    body.Receipt(body.ReceiptStatus.DELIVERED, 3, bytes(range(32)), b"note\n", None, None),
    body.Receipt(body.ReceiptStatus.ACKNOWLEDGED, 0, bytes(32), b"", "Maj. Smith", "Received."),
    body.OverdueNotice(body.Side.SENDER, 7, "ru", 2, 1_700_000_000_000),
    body.LinkNotice("ua", "down", "up"),
    body.LinkTestRecord(1_700_000_000_000),
]


@pytest.mark.parametrize("value", EXAMPLES, ids=lambda v: type(v).__name__)
def test_every_body_round_trips_through_its_bytes(value: body.Body) -> None:
    data = body.encode(value)
    assert body.parse_body(data) == value
    assert body.encode(body.parse_body(data)) == data


def test_bytes_on_the_wire_are_sorted_compact_json() -> None:
    assert body.encode(body.Text("en", "hi")) == b'{"lang":"en","text":"hi","type":"text"}'
    receipt = body.encode(body.Receipt(body.ReceiptStatus.DELIVERED, 1, bytes(32), b"n"))
    assert json.loads(receipt) == {
        "type": "receipt",
        "status": "delivered",
        "of_index": 1,
        "of_hash": "00" * 32,
        "checkpoint": "n",
    }


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"\xff", "body"),
        (b"[]", "body"),
        (b'{"type": "video"}', "type"),
        (b'{"type": "text", "lang": "en"}', "text"),
        (b'{"type": "text", "lang": "xx", "text": "hi"}', "lang"),
        (b'{"type": "form", "form": "x", "version": 1, "fields": []}', "fields"),
        (b'{"type": "link-test", "sent_ms": 9223372036854775808}', "sent_ms"),
        (b'{"type": "link-test", "sent_ms": -1}', "sent_ms"),
        (b'{"type": "link-test", "sent_ms": true}', "sent_ms"),
        (b'{"type": "notice", "notice": "party"}', "notice"),
        (b'{"type": "notice", "notice": "overdue", "side": "both"}', "side"),
        (b'{"type": "receipt", "status": "read"}', "status"),
        (
            b'{"type": "receipt", "status": "delivered", "of_index": 1, "of_hash": "zz"}',
            "of_hash",
        ),
        (
            b'{"type": "receipt", "status": "delivered", "of_index": 1, "of_hash": "00"}',
            "of_hash",
        ),
    ],
)
def test_a_bad_body_is_malformed_naming_the_field(data: bytes, field: str) -> None:
    with pytest.raises(Malformed) as caught:
        body.parse_body(data)
    assert caught.value.field == field


def test_deep_nesting_is_malformed_not_a_recursion_error() -> None:
    deep = b'{"type":"form","form":"x","version":1,"fields":{"a":' + b"[" * 100_000
    deep += b"]" * 100_000 + b"}}"
    with pytest.raises(Malformed):
        body.parse_body(deep)
    shallow_but_too_deep = {"type": "form", "form": "x", "version": 1, "fields": {"a": [[[[]]]]}}
    for _ in range(20):
        shallow_but_too_deep["fields"] = {"a": shallow_but_too_deep["fields"]}
    with pytest.raises(Malformed):
        body.parse_body(json.dumps(shallow_but_too_deep).encode())


def test_text_with_a_lone_surrogate_is_malformed_not_an_encoding_error() -> None:
    # An operator's JSON request can carry "\\ud800", which has no UTF-8: a 500 before.
    for make in (
        lambda: body.text("\ud800", "en"),
        lambda: body.body_from_dict({"type": "text", "lang": "en", "text": "a \udfff"}),
    ):
        with pytest.raises(Malformed) as caught:
            make()
        assert caught.value.field == "text"


def test_a_body_over_the_limit_is_refused_before_parsing() -> None:
    with pytest.raises(Malformed):
        body.parse_body(b" " * (body.MAX_BODY + 1))


BODY_KEYS = [
    *("lang", "text", "form", "version", "fields", "status", "of_index", "of_hash"),
    *("checkpoint", "operator", "reply", "side", "party", "level", "due_ms", "from", "to"),
    "sent_ms",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@given(st.binary(max_size=300))
def test_any_bytes_give_a_body_or_a_hotline_error(data: bytes) -> None:
    with contextlib.suppress(HotlineError):
        body.parse_body(data)


@given(
    st.sampled_from(["text", "form", "receipt", "notice", "link-test", "other"]),
    st.sampled_from(["overdue", "link", None]),
    st.dictionaries(
        st.sampled_from(BODY_KEYS),
        json_values,
        max_size=6,
    ),
)
def test_any_body_shaped_json_gives_a_body_or_malformed(
    kind: str, notice: str | None, fields: dict[str, object]
) -> None:
    value = {**fields, "type": kind, "notice": notice}
    try:
        parsed = body.body_from_dict(value)
    except Malformed:
        return
    assert body.parse_body(body.encode(parsed)) == parsed


# --- a delivered receipt naming a run of entries (issue 15) --------------------------------


def _h(index: int) -> bytes:
    """An envelope hash of its own for each index (a run names each envelope once)."""
    return hashlib.sha256(index.to_bytes(8, "big")).digest()


def _run(indexes: list[int], status: str = "delivered") -> bytes:
    first, *rest = indexes
    value = {
        "type": "receipt",
        "status": status,
        "of_index": first,
        "of_hash": _h(first).hex(),
        "checkpoint": "n",
        "also": [{"of_index": i, "of_hash": _h(i).hex()} for i in rest],
    }
    return json.dumps(value).encode()


@given(st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=body.MAX_RECEIPT_REFS, unique=True))
def test_a_run_of_rising_entries_round_trips_and_names_each_once(indexes: list[int]) -> None:
    indexes.sort()
    made = body.delivered([(i, _h(i)) for i in indexes], b"n")
    assert [(r.of_index, r.of_hash) for r in made.each()] == [(i, _h(i)) for i in indexes]
    assert all(not r.also and r.status == body.ReceiptStatus.DELIVERED for r in made.each())
    data = body.encode(made)
    assert body.parse_body(data) == made and body.encode(body.parse_body(data)) == data
    assert ("also" in json.loads(data)) == (len(indexes) > 1)  # one entry: as it always was


@given(st.lists(st.integers(0, 1000), min_size=2, max_size=10))
def test_a_run_not_strictly_rising_is_refused(indexes: list[int]) -> None:
    rising = all(b > a for a, b in itertools.pairwise(indexes))
    if rising:
        assert isinstance(body.parse_body(_run(indexes)), body.Receipt)
        return
    with pytest.raises(Malformed) as caught:
        body.parse_body(_run(indexes))
    assert caught.value.field == "also"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "acknowledged"}, "also"),  # an acknowledgment is one operator, one message
        ({"also": []}, "also"),
        ({"also": {}}, "also"),
        ({"also": [[4, "00" * 32]]}, "also"),
        ({"also": [{"of_index": 4}]}, "also"),
        ({"also": [{"of_index": 4, "of_hash": "00" * 32, "x": 1}]}, "also"),
        ({"also": [{"of_index": 4, "of_hash": "zz"}]}, "of_hash"),
        ({"also": [{"of_index": 4, "of_hash": "00" * 31}]}, "of_hash"),
        ({"also": [{"of_index": -4, "of_hash": "00" * 32}]}, "of_index"),
        ({"also": [{"of_index": True, "of_hash": "00" * 32}]}, "of_index"),
        (
            {"also": [{"of_index": i, "of_hash": _h(i).hex()} for i in range(4, 4 + 64)]},
            "also",
        ),  # 65 entries in all
        ({"also": [{"of_index": 4, "of_hash": _h(3).hex()}]}, "also"),  # one envelope twice
    ],
)
def test_a_malformed_run_is_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    value = json.loads(_run([3, 4]))
    value.update(change)
    with pytest.raises(Malformed) as caught:
        body.parse_body(json.dumps(value).encode())
    assert caught.value.field == field
    with pytest.raises(Malformed):
        body.delivered([], b"n")
    with pytest.raises(Malformed):
        body.delivered([(i, _h(i)) for i in range(body.MAX_RECEIPT_REFS + 1)], b"n")
