"""The situation map, the link history, the printable record and the compose page, in
process (no browser): what the server puts on each page, in the operator's language."""

from __future__ import annotations

import html
import io
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader
from starlette.testclient import TestClient

from hotline import body as body_mod
from hotline.station import linkhistory, operators
from hotline.station.core import StationCore
from hotline.station.linkhistory import HOUR_MS, LinkSample
from hotline.station.situation import places_of, situation
from hotline.station.store import Message

from .conftest import World
from .test_console_edges import PASSWORD, console_app

NOTICE = {
    "type": "form",
    "form": "deconfliction-notice",
    "version": 1,
    "fields": {
        "activity": "repair-power-infrastructure",
        "area": {"point": {"lat": 47.5123, "lon": 34.5861}, "radius_km": 5},
        "altitude": {"min_m": 0, "max_m": 150},
        "window": {"start": "2026-11-26T06:00:00Z", "end": "2026-11-26T18:00:00Z"},
        "contact": "Energy repair coordination cell",
        "ack_requested": True,
    },
}
REPORT = {
    "type": "form",
    "form": "incident-report",
    "version": 1,
    "fields": {
        "time": "2026-11-25T02:10:00Z",
        "location": {"point": {"lat": 50.45, "lon": 30.52}},
        "incident": "drone-strike",
        "counts": [{"means": "drones-launched", "count": 183, "source": "ua"}],
    },
}
DAY_START = 1795651200000  # 2026-11-26T00:00:00Z


def put(core: StationCore, index: int, body: dict[str, Any], relay_ms: int, sender: str) -> None:
    content = body_mod.body_from_dict(body)
    with core.store.transaction():
        core.store.add_message(
            Message(
                "us-ru-ua",
                index,
                sender,
                sender.split("/")[0],
                index + 1,
                1,
                3,
                relay_ms,
                relay_ms,
                bytes([index]) * 32,
                body_mod.encode(content).decode(),
                relay_ms,
                None,
            )
        )


@pytest.fixture
def ru_console(tmp_path: Path, world: World) -> Iterator[tuple[TestClient, StationCore]]:
    app, core = console_app(tmp_path, world)
    operators.add_operator(core.store, "Lt. Col. Orlova", PASSWORD, "ru", core.now_ms())
    with TestClient(app, base_url="http://127.0.0.1") as client:
        r = client.post(
            "/login",
            data={"name": "Lt. Col. Orlova", "password": PASSWORD},
            follow_redirects=False,
        )
        assert r.status_code == 303
        yield client, core


def places_on(page: str) -> list[dict[str, Any]]:
    found = re.search(r'id="map"[^>]*data-places="([^"]*)"', page)
    assert found, "no map on the page"
    places: list[dict[str, Any]] = json.loads(html.unescape(found.group(1)))
    return places


def test_situation_shows_notices_in_the_window_and_recent_incidents(
    ru_console: tuple[TestClient, StationCore],
) -> None:
    client, core = ru_console
    put(core, 0, NOTICE, DAY_START - HOUR_MS, "us/us-1")
    put(core, 1, REPORT, DAY_START - 20 * HOUR_MS, "ua/ua-1")
    page = client.get("/situation?from=2026-11-26T05:00&to=2026-11-26T07:00&hours=48")
    assert page.status_code == 200, page.text
    places = {p["key"]: p for p in places_on(page.text)}
    notice = places["us-ru-ua/0/area"]
    assert (notice["lat"], notice["lon"], notice["radius_m"]) == (47.5123, 34.5861, 5000.0)
    assert notice["kind"] == "notice" and notice["href"] == "/message/us-ru-ua/0"
    assert notice["mgrs"].startswith("36T") and notice["degrees"] == "47,5123°N 34,5861°E"
    assert "ожидается подтверждение" in notice["ack_text"]  # not acknowledged, in Russian
    assert places["us-ru-ua/1/location"]["kind"] == "incident"
    assert "Уведомление о деконфликтации" in page.text and "Обстановка" in page.text
    # A window that ends before the notice's starts shows none of it.
    before = client.get("/situation?from=2026-11-26T00:00&to=2026-11-26T05:59&hours=1")
    assert "us-ru-ua/0/area" not in before.text
    # A bad time is reported beside its field, in Russian, and the page still shows.
    bad = client.get("/situation?from=yesterday")
    assert bad.status_code == 200 and "field-error" in bad.text


def test_every_form_with_an_area_is_a_place_and_text_is_none(world: World) -> None:
    def msg(body: dict[str, Any]) -> Message:
        content = body_mod.encode(body_mod.body_from_dict(body)).decode()
        return Message("c", 0, "us/us-1", "us", 1, 1, 3, 5, 5, bytes(32), content, 5, None)

    (p,) = places_of(msg(NOTICE))
    assert (p.start_ms, p.end_ms) == (DAY_START + 6 * HOUR_MS, DAY_START + 18 * HOUR_MS)
    assert places_of(msg({"type": "text", "lang": "en", "text": "47.5 N 34.5 E"})) == []
    broken = json.loads(json.dumps(NOTICE))
    broken["fields"]["area"]["point"]["lat"] = 123  # invalid: no place, no crash
    assert places_of(msg(broken)) == []
    found = situation([msg(NOTICE), msg(REPORT)], DAY_START, DAY_START + HOUR_MS, 0)
    assert found.notices == []  # the notice's window starts at 06:00
    assert [q.form for q in found.incidents] == ["incident-report"]


def test_message_page_maps_its_area_and_the_record_prints_both_languages(
    ru_console: tuple[TestClient, StationCore],
) -> None:
    client, core = ru_console
    put(core, 0, NOTICE, DAY_START, "us/us-1")
    page = client.get("/message/us-ru-ua/0")
    assert page.status_code == 200
    (place,) = places_on(page.text)
    assert place["radius_m"] == 5000.0 and "/static/leaflet.js" in page.text
    view = client.get("/message/us-ru-ua/0/print")
    assert view.status_code == 200
    assert "Уведомление о деконфликтации" in view.text  # the reader's language
    assert "Deconfliction notice" in view.text  # beside the sender's (us: English)
    assert bytes([0]).hex() * 32 in view.text  # the entry hash
    got = client.get("/message/us-ru-ua/0/record.pdf")
    assert got.status_code == 200 and got.headers["content-type"] == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(got.content)).pages)
    for expected in (
        "Запись сообщения us-ru-ua №0",
        "Уведомление о деконфликтации",
        "Deconfliction notice",
        "Energy repair coordination cell",
        "MGRS 36T",
        "Квитанции",
    ):
        assert expected in text, expected


def test_compose_says_what_is_wrong_beside_each_field_in_russian_and_keeps_input(
    ru_console: tuple[TestClient, StationCore],
) -> None:
    client, core = ru_console
    form = client.get("/compose?form=deconfliction-notice")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf and 'class="map pick-map"' in form.text
    sent_before = core.store.outbox_counts()
    r = client.post(
        "/compose?form=deconfliction-notice",
        data={
            "csrf": csrf.group(1),
            "channel": "us-ru",
            "precedence": "PRIORITY",
            "activity": "exercise",
            "area.lat": "147.5",
            "area.lon": "34.5",
            "contact": "Cell 4",
            "window.start": "tomorrow",
        },
    )
    assert r.status_code == 422
    errors = dict(re.findall(r'class="error field-error" data-field="(\w+)">([^<]+)<', r.text))
    assert set(errors) == {"area", "window"}, errors
    assert all(re.search("[а-яА-Я]", text) for text in errors.values()), errors
    assert 'value="147.5"' in r.text and 'value="Cell 4"' in r.text
    assert core.store.outbox_counts() == sent_before  # nothing was sent


def test_link_history_bands_hold_until_the_next_sample_and_gaps_show_no_data() -> None:
    end = 100 * HOUR_MS
    s = [
        LinkSample("c", "ru", end - 3 * HOUR_MS, "up", 12.0, "ru/ru-1"),
        LinkSample("c", "ru", end - 3 * HOUR_MS + 60_000, "up"),
        LinkSample("c", "ru", end - 2 * HOUR_MS, "down"),
        LinkSample("c", "ru", end - 2 * HOUR_MS + 60_000, "down"),
    ]
    bands = linkhistory.bands(s, end - 24 * HOUR_MS, end)
    hold = linkhistory.HOLD_MS
    assert [(b.state, b.start_ms, b.end_ms) for b in bands] == [
        ("up", end - 3 * HOUR_MS, end - 3 * HOUR_MS + 60_000 + hold),
        ("down", end - 2 * HOUR_MS, end - 2 * HOUR_MS + 60_000 + hold),
    ]
    drawn = linkhistory.chart(s, end)
    assert drawn.max_rtt_ms == 12.0 and len(drawn.points) == 1
    x, _, _ = drawn.bands[0]
    assert x == pytest.approx(linkhistory.WIDTH * 21 / 24, abs=0.01)


def test_link_board_page_draws_each_partys_last_24_hours(
    ru_console: tuple[TestClient, StationCore],
) -> None:
    client, core = ru_console
    now = core.now_ms()
    with core.store.transaction():
        for minutes in range(0, 120, 1):
            state = "down" if 30 <= minutes < 40 else "up"
            at = now - (120 - minutes) * 60_000
            core.store.add_link_sample(LinkSample("us-ru", "ru", at, state, 20.0 + minutes))
        core.store.add_link_sample(LinkSample("us-ru", "ru", now - 30 * HOUR_MS, "up"))
    page = client.get("/links")
    assert page.status_code == 200
    figure = re.search(
        r'<figure class="link-history" id="history-us-ru-ru".*?</figure>', page.text, re.S
    )
    assert figure
    states = re.findall(r'data-state="(\w+)"', figure.group(0))
    assert states == ["up", "down", "up"]
    assert len(re.findall(r'class="rtt"', figure.group(0))) == 120
    assert "История связи" in page.text


def test_a_hostile_text_cannot_reach_into_the_pdf(
    ru_console: tuple[TestClient, StationCore],
) -> None:
    # reportlab's paragraphs read markup: an <img> there would embed a file of the
    # station's disk into the record. The sender's text is printed as text.
    client, core = ru_console
    evil = '<img src="/etc/hostname" width="50" height="50"/><b>bold</b> & <font size="40">x</font>'
    put(core, 0, {"type": "text", "lang": "en", "text": evil}, DAY_START, "us/us-1")
    got = client.get("/message/us-ru-ua/0/record.pdf")
    assert got.status_code == 200
    reader = PdfReader(io.BytesIO(got.content))
    text = "".join(p.extract_text() for p in reader.pages)
    assert '<img src="/etc/hostname"' in text and "<b>bold</b> &" in text
    assert all(not page.images for page in reader.pages)  # nothing embedded
    view = client.get("/message/us-ru-ua/0/print")
    assert "&lt;img src=" in view.text and "<img src=" not in view.text


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 30 * HOUR_MS), st.sampled_from(["up", "degraded", "down", "unknown"])
        ),
        max_size=30,
    )
)
def test_link_history_bands_never_overlap_and_say_the_state_then(
    raw: list[tuple[int, str]],
) -> None:
    end = 30 * HOUR_MS
    start = end - linkhistory.SPAN_MS
    samples = [LinkSample("c", "ru", at, state) for at, state in raw]
    got = linkhistory.bands(samples, start, end)
    for band in got:
        assert start <= band.start_ms < band.end_ms <= end
        # The state a band shows is that of the last sample at or before its start.
        before = [s for s in samples if s.at_ms <= band.start_ms]
        assert before
        last_at = max(s.at_ms for s in before)
        assert band.state in {s.state for s in before if s.at_ms == last_at}
    for a, b in itertools.pairwise(got):
        assert a.end_ms <= b.start_ms
    drawn = linkhistory.chart(samples, end)
    assert all(0 <= x <= linkhistory.WIDTH and w >= linkhistory.MIN_BAND for x, w, _ in drawn.bands)
