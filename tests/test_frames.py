"""Frames are typed values: anything that is not a valid frame is refused with a
HotlineError (never another exception), and every frame survives the wire unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline import frames
from hotline.errors import HotlineError, Malformed, NotAuthorized, TooLarge, from_dict
from hotline.frames import (
    Accepted,
    Certificates,
    Challenge,
    Cosign,
    Entries,
    Entry,
    ErrorReply,
    GetCertificates,
    Hello,
    Link,
    LinkKind,
    LinkTest,
    Ok,
    Ping,
    Pong,
    Post,
    Revoke,
    Sync,
    Welcome,
)
from hotline.leaf import LeafKind
from hotline.notes import b64

# --- strategies ----------------------------------------------------------------------

texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
counts = st.integers(0, 2**63 - 1)
ids = st.none() | texts | counts
blobs = st.binary(max_size=48)
digests = st.binary(min_size=32, max_size=32)
notes = texts.map(str.encode)


def tuples(of: st.SearchStrategy[Any], max_size: int = 4) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(of, max_size=max_size).map(tuple)


link_tests = st.builds(
    LinkTest, st.sampled_from(LinkKind), texts, texts, counts, texts, blobs, st.none() | texts
)
station_frames = st.one_of(
    st.builds(Hello, texts, blobs, blobs),
    st.builds(Post, blobs, id=ids),
    st.builds(Sync, texts, counts, id=ids),
    st.builds(Cosign, texts, counts, notes, id=ids),
    st.builds(GetCertificates, id=ids),
    st.builds(Revoke, notes, id=ids),
    st.builds(Ping, id=ids),
    st.builds(Link, link_tests),
)
relay_frames = st.one_of(
    st.builds(Challenge, digests, digests, counts),
    st.builds(
        Welcome,
        texts,
        tuples(texts),
        st.dictionaries(texts, counts, max_size=3).map(lambda d: tuple(d.items())),
        counts,
    ),
    st.builds(
        Accepted, ids, texts, counts, digests, counts, counts, st.booleans(), notes, tuples(digests)
    ),
    st.builds(
        Entries,
        ids,
        texts,
        counts,
        tuples(st.builds(Entry, counts, blobs, counts)),
        notes,
        tuples(digests),
        st.booleans(),
    ),
    st.builds(Certificates, ids, tuples(notes), tuples(notes)),
    st.builds(Pong, ids, counts),
    st.builds(Ok, ids),
    st.builds(
        ErrorReply, ids, texts, texts, st.none() | texts, st.none() | counts, st.none() | texts
    ),
    st.builds(Link, link_tests),
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=5,
)
OPS = [
    "hello", "post", "sync", "cosign", "certificates", "revocation", "ping", "link",
    "challenge", "welcome", "accepted", "entries", "pong", "ok", "error", "nonsense",
]  # fmt: skip
FIELDS = [
    "id", "station", "certificate", "signature", "envelope", "channel", "from", "size",
    "checkpoint", "data", "link", "nonce", "roster", "relay_ms", "channels", "sizes", "index",
    "hash", "seq", "duplicate", "proof", "start", "entries", "consistency", "more",
    "certificates", "revocations", "error",
]  # fmt: skip
frame_like = st.builds(
    lambda op, fields: {"op": op, **fields},
    st.sampled_from(OPS),
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5),
)


def _decoded_or_refused(raw: str | bytes) -> None:
    """Each decoder gives a frame that survives re-encoding, or refuses with a HotlineError."""
    for decode in (frames.decode_station_frame, frames.decode_relay_frame):
        try:
            frame = decode(raw)
        except HotlineError:
            continue
        assert decode(frames.encode_frame(frame)) == frame


# --- properties ----------------------------------------------------------------------


@given(station_frames)
def test_every_station_frame_survives_the_wire(frame: frames.StationFrame) -> None:
    text = frames.encode_frame(frame)
    assert frames.decode_station_frame(text) == frame
    assert frames.decode_station_frame(text.encode()) == frame


@given(relay_frames)
def test_every_relay_frame_survives_the_wire(frame: frames.RelayFrame) -> None:
    text = frames.encode_frame(frame)
    assert frames.decode_relay_frame(text) == frame
    assert frames.encode_frame(frames.decode_relay_frame(text)) == text


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_any_bytes_give_a_frame_or_a_hotline_error(raw: bytes) -> None:
    _decoded_or_refused(raw)


@settings(max_examples=500)
@given(frame_like)
def test_any_json_object_gives_a_frame_or_a_hotline_error(data: dict[str, Any]) -> None:
    _decoded_or_refused(json.dumps(data))


@settings(max_examples=300)
@given(station_frames | relay_frames, st.sampled_from(FIELDS), json_values)
def test_a_frame_with_any_field_replaced_gives_a_frame_or_a_hotline_error(
    frame: frames.Frame, key: str, value: Any
) -> None:
    data = json.loads(frames.encode_frame(frame))
    data[key] = value
    _decoded_or_refused(json.dumps(data))


# --- the wire, byte for byte ------------------------------------------------------------


def _wire(op: str, **fields: Any) -> str:
    """A frame as the untyped encoder wrote it: compact JSON, ``op`` first."""
    return json.dumps({"op": op, **fields}, separators=(",", ":"))


def test_frames_are_written_as_before_typing() -> None:
    """The typed encoder writes exactly what the untyped one wrote for each op in use."""
    h, n = bytes(range(32)), bytes(32)
    cases: list[tuple[frames.Frame, str]] = [
        (
            Hello("us/us-1", b"cert", b"sig"),
            _wire("hello", station="us/us-1", certificate=b64(b"cert"), signature=b64(b"sig")),
        ),
        (
            Post(b"env", id="post:us-ru:1"),
            _wire("post", id="post:us-ru:1", envelope=b64(b"env")),
        ),
        (
            Sync("us-ru", 7, id="sync:us-ru"),
            _wire("sync", id="sync:us-ru", channel="us-ru", **{"from": 7}),
        ),
        (
            Cosign("us-ru", 3, b"note\n"),
            _wire("cosign", channel="us-ru", size=3, checkpoint="note\n"),
        ),
        (GetCertificates(id="certs"), _wire("certificates", id="certs")),
        (Revoke(b"rev\n", id="r"), _wire("revocation", id="r", data="rev\n")),
        (Ping(id="ping:1.5"), _wire("ping", id="ping:1.5")),
        (Challenge(n, h, 5), _wire("challenge", nonce=b64(n), roster=b64(h), relay_ms=5)),
        (
            Welcome("us/us-1", ("us-ru", "x"), (("us-ru", 2), ("x", 0)), 9),
            _wire(
                "welcome",
                station="us/us-1",
                channels=["us-ru", "x"],
                sizes={"us-ru": 2, "x": 0},
                relay_ms=9,
            ),
        ),
        (
            Accepted("post:c:1", "c", 4, h, 1, 9, False, b"cp\n", (h, n)),
            _wire(
                "accepted",
                id="post:c:1",
                channel="c",
                index=4,
                hash=b64(h),
                seq=1,
                relay_ms=9,
                duplicate=False,
                checkpoint="cp\n",
                proof=[b64(h), b64(n)],
            ),
        ),
        (
            Entries(None, "c", 1, (Entry(1, b"e", 8),), b"cp\n", (h,), True),
            _wire(
                "entries",
                id=None,
                channel="c",
                start=1,
                entries=[{"index": 1, "kind": "envelope", "envelope": b64(b"e"), "relay_ms": 8}],
                checkpoint="cp\n",
                consistency=[b64(h)],
                more=True,
            ),
        ),
        (
            Certificates("c", (b"a\n",), ()),
            _wire("certificates", id="c", certificates=["a\n"], revocations=[]),
        ),
        (Pong("p", 3), _wire("pong", id="p", relay_ms=3)),
        (Ok(None), _wire("ok", id=None)),
        (
            ErrorReply.of("x", NotAuthorized("no", channel="c")),
            _wire("error", id="x", error=NotAuthorized("no", channel="c").to_dict()),
        ),
    ]
    for frame, before in cases:
        assert frames.encode_frame(frame) == before


def test_a_link_test_is_forwarded_as_its_station_signed_it() -> None:
    msg = {
        "kind": "pong",
        "channel": "us-ru",
        "from": "ru/ru-1",
        "sent_ms": 12,
        "nonce": "ab12",
        "to": "us/us-1",
        "signature": b64(bytes(64)),
    }
    text = _wire("link", link=msg)
    frame = frames.decode_station_frame(text)
    assert isinstance(frame, Link) and frame.link.to_dict() == msg
    assert frames.encode_frame(frame) == text


def test_an_error_reply_rebuilds_its_error() -> None:
    reply = frames.decode_relay_frame(
        frames.encode_frame(ErrorReply.of(3, Malformed("bad", field="from")))
    )
    assert isinstance(reply, ErrorReply)
    err = reply.error()
    assert isinstance(err, Malformed) and err.field == "from" and reply.id == 3
    assert from_dict(err.to_dict()).to_dict() == err.to_dict()


# --- what is refused ---------------------------------------------------------------------


def _refused(data: dict[str, Any], decode: Any = frames.decode_station_frame) -> Malformed:
    with pytest.raises(Malformed) as info:
        decode(json.dumps(data))
    return info.value


def test_every_field_is_checked_for_its_type_and_range() -> None:
    good = {"op": "sync", "id": "s", "channel": "us-ru", "from": 0}
    assert frames.decode_station_frame(json.dumps(good)) == Sync("us-ru", 0, id="s")
    for key, value in [
        ("from", -1),
        ("from", 2**63),
        ("from", True),
        ("from", 1.0),
        ("from", "1"),
        ("channel", 5),
        ("channel", "\ud800"),  # a lone surrogate is no UTF-8 text
        ("id", [1]),
        ("id", 1.5),
    ]:
        assert _refused({**good, key: value}).field == key, (key, value)
    assert _refused({"op": "sync", "channel": "us-ru"}).field == "from"
    assert _refused({"op": "post", "envelope": "not base64!"}).field == "envelope"
    assert _refused({"op": "hello", "station": "a"}).field == "certificate"


def test_hashes_must_be_hashes_and_proofs_bounded() -> None:
    ok = json.loads(frames.encode_frame(Accepted("a", "c", 0, bytes(32), 1, 0, False, b"", ())))
    assert _refused({**ok, "hash": b64(bytes(31))}, frames.decode_relay_frame).field == "hash"
    assert _refused({**ok, "proof": [b64(bytes(33))]}, frames.decode_relay_frame).field == "proof"
    assert (
        _refused({**ok, "proof": [b64(bytes(32))] * 129}, frames.decode_relay_frame).field
        == "proof"
    )
    assert _refused({**ok, "proof": [7]}, frames.decode_relay_frame).field == "proof"
    assert _refused({**ok, "duplicate": 0}, frames.decode_relay_frame).field == "duplicate"


def test_a_link_message_with_unknown_fields_or_kind_is_refused() -> None:
    msg = LinkTest(LinkKind.PING, "c", "us/us-1", 1, "n", b"s").to_dict()
    assert _refused({"op": "link", "link": {**msg, "extra": 1}}).field == "link"
    assert _refused({"op": "link", "link": {**msg, "kind": "pang"}}).field == "kind"
    assert _refused({"op": "link", "link": "ping"}).field == "link"


def test_sizes_are_checked_before_parsing_and_nesting_is_refused() -> None:
    with pytest.raises(TooLarge):
        frames.decode_station_frame("[" * (frames.MAX_FRAME + 1))
    with pytest.raises(Malformed):
        frames.decode_station_frame("[" * 100_000 + "]" * 100_000)
    with pytest.raises(Malformed):
        frames.decode_relay_frame(b"\xff\xfe{")
    for text in ("[]", '{"op": 1}', "{}", '"op"', '{"op": "hello"'):
        with pytest.raises(Malformed):
            frames.decode_station_frame(text)


def test_ops_belong_to_one_direction() -> None:
    with pytest.raises(Malformed, match="unknown op"):
        frames.decode_station_frame(frames.encode_frame(Ok("x")))
    with pytest.raises(Malformed, match="unknown op"):
        frames.decode_relay_frame(frames.encode_frame(Post(b"x")))
    # "certificates" asks in one direction and answers in the other.
    asked = frames.decode_station_frame(frames.encode_frame(Certificates("c", (b"a",), ())))
    assert asked == GetCertificates(id="c")
    with pytest.raises(Malformed):
        frames.decode_relay_frame(frames.encode_frame(GetCertificates(id="c")))


def test_the_request_id_of_a_bad_frame_is_still_echoed() -> None:
    data = frames.parse_object('{"op": "post", "id": "p1", "envelope": 5}')
    assert frames.request_id_of(data) == "p1"
    assert frames.request_id_of({"op": "post", "id": {"x": 1}}) is None


def test_the_protocol_document_names_every_frame() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md").read_text()
    section = doc.split("## 6.")[1].split("\n## ")[0]
    for union in (frames.StationFrame, frames.RelayFrame):
        for cls in get_args(union):
            assert f"| `{cls.op}` |" in section and f"`{cls.__name__}`" in section, cls


def test_an_entry_carries_its_kind_and_one_without_a_known_kind_is_refused() -> None:
    key_event = Entry(2, b"hotline-certificate/v1\n", 9, LeafKind.KEY_EVENT)
    assert key_event.wire()["kind"] == "key_event"
    assert Entry.read(key_event.wire()) == key_event
    for kind in (None, "statement", 3):
        wire = {**key_event.wire(), "kind": kind}
        with pytest.raises(Malformed):
            Entry.read(wire)
    wire = key_event.wire()
    del wire["kind"]
    with pytest.raises(Malformed, match="lacks kind"):
        Entry.read(wire)
