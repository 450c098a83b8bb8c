"""The operator's picture in real headless Chromium, on the world `hotline demo` builds
(its channels, stations and scenario; link tests every 2 s instead of 60): the
situation map draws the demo's deconfliction area where and as large as it is, the
link board charts each party's history, a message prints to PDF that reads back, and
the compose map sets the point. No page loads anything from outside the station."""

from __future__ import annotations

import asyncio
import io
import math
import unicodedata
from typing import Any

import pytest
from pypdf import PdfReader

from hotline import demo
from hotline.provision import DEMO_CHANNELS

from .netutil import Cluster, wait_for
from .test_console import ARTIFACTS, add_operator, browser, sign_in, url

pytestmark = pytest.mark.network

__all__ = ["browser"]  # the Chromium fixture, shared with test_console

from playwright.sync_api import Browser, Page, Request, expect  # noqa: E402

CENTER = (47.5123, 34.5861)  # the demo's notice: repair work within 5 km of here
RADIUS_M = 5000.0
EARTH_M = 6_371_008.8


def east_of(lat: float, lon: float, metres: float) -> tuple[float, float]:
    """The point ``metres`` due east on the sphere Leaflet measures on (great circle)."""
    d = metres / EARTH_M
    p, lam = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p) * math.cos(d))
    lam2 = lam + math.atan2(math.sin(d) * math.cos(p), math.cos(d) - math.sin(p) * math.sin(p2))
    return math.degrees(p2), math.degrees(lam2)


@pytest.fixture(scope="module")
def demo_world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    fast = {name: {**spec, "link_test_seconds": 2} for name, spec in DEMO_CHANNELS.items()}
    c = Cluster(tmp_path_factory.mktemp("situation"), channels=fast).start()
    add_operator(c, "us/us-1", "Maj. Carter")
    add_operator(c, "ru/ru-1", "Lt. Col. Orlova")
    asyncio.run(demo.scenario(c.net))  # the demo's own traffic, through each station's API
    yield c
    c.close()


def pdf_text(data: bytes) -> str:
    """A PDF's text as a reader sees it (ligatures such as "fl" spelled out)."""
    pages = PdfReader(io.BytesIO(data)).pages
    return unicodedata.normalize("NFKC", "".join(p.extract_text() for p in pages))


def recorded(page: Page) -> list[str]:
    """Every request the page makes from now on (each must stay on the station)."""
    seen: list[str] = []

    def record(request: Request) -> None:
        seen.append(request.url)

    page.on("request", record)
    return seen


def assert_local(seen: list[str], c: Cluster, ident: str) -> None:
    origin = url(c, ident, "/")
    outside = [u for u in seen if not u.startswith(origin) and not u.startswith("data:")]
    assert seen and outside == [], outside


def test_situation_map_draws_the_demos_area_at_its_place_and_to_scale(
    demo_world: Cluster, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = sign_in(browser, demo_world, "ru/ru-1", "Lt. Col. Orlova")
    seen = recorded(page)
    page.set_viewport_size({"width": 1400, "height": 900})
    # The demo's window is 2026-11-26 06:00-18:00 UTC; ask for a window around it.
    page.goto(
        url(demo_world, "ru/ru-1", "/situation?from=2026-11-26T05:00&to=2026-11-26T19:00&hours=720")
    )
    expect(page.locator("#map")).to_have_attribute("data-ready", "1")
    expect(page.locator("#map")).to_have_attribute("data-borders", "loaded", timeout=15000)
    item = page.locator("#notices li", has_text="us-ru-ua")
    expect(item).to_have_count(1)
    key = item.get_attribute("data-key")
    assert key and key.startswith("us-ru-ua/") and key.endswith("/area")
    expect(page.locator("#incidents li")).to_have_count(1)  # ua's report of the night
    page.wait_for_function(
        "() => !window.hotlineMap._animatingZoom"
    )  # a function: no eval under the CSP
    page.screenshot(path=str(ARTIFACTS / "situation.png"))
    # The map's own coordinates: the circle's centre and radius, then the bounds it
    # covers measured on the map (5 km east and north of the centre).
    got = page.evaluate(
        """(key) => {
          const layer = window.hotlineLayers[key], map = window.hotlineMap;
          const c = layer.getLatLng(), b = layer.getBounds();
          return {lat: c.lat, lon: c.lng, radius: layer.getRadius(),
                  east: map.distance(c, L.latLng(c.lat, b.getEast())),
                  north: map.distance(c, L.latLng(b.getNorth(), c.lng))};
        }""",
        key,
    )
    assert (got["lat"], got["lon"], got["radius"]) == (*CENTER, RADIUS_M)
    assert got["east"] == pytest.approx(RADIUS_M, rel=0.01)
    assert got["north"] == pytest.approx(RADIUS_M, rel=0.01)
    # Zoom to it (a click on its line), then check what is drawn: the SVG path's box
    # is centred on the map's point for the centre and spans 5 km each way in pixels.
    item.locator(".where").click()
    page.wait_for_function("() => window.hotlineMap.getZoom() >= 10")
    page.wait_for_timeout(500)  # the zoom animation's last frame
    east_lat, east_lon = east_of(*CENTER, RADIUS_M)
    drawn = page.evaluate(
        """([key, east]) => {
          const layer = window.hotlineLayers[key], map = window.hotlineMap;
          const box = layer.getElement().getBoundingClientRect();
          const node = map.getContainer(), frame = node.getBoundingClientRect();
          const left = frame.left + node.clientLeft, top = frame.top + node.clientTop;
          const c = map.latLngToContainerPoint(layer.getLatLng());
          const e = map.latLngToContainerPoint(L.latLng(east[0], east[1]));
          return {cx: box.left - left + box.width / 2, cy: box.top - top + box.height / 2,
                  w: box.width, h: box.height, px: c.x, py: c.y, r: e.x - c.x};
        }""",
        [key, [east_lat, east_lon]],
    )
    assert drawn["r"] > 40  # zoomed in far enough to measure
    # (The path's box includes half its 2 px stroke on each side.)
    assert drawn["cx"] == pytest.approx(drawn["px"], abs=1.5)
    assert drawn["cy"] == pytest.approx(drawn["py"], abs=1.5)
    assert drawn["w"] / 2 == pytest.approx(drawn["r"] + 1, rel=0.02, abs=1.5)
    assert drawn["h"] / 2 == pytest.approx(drawn["r"] + 1, rel=0.02, abs=1.5)
    page.screenshot(path=str(ARTIFACTS / "situation-zoomed.png"))
    # The area with the land around it, at 20 km to the scale bar.
    page.evaluate(
        "(c) => { window.hotlineMap.closePopup();"
        " window.hotlineMap.setView(c, 8.5, {animate: false}); }",
        list(CENTER),
    )
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "situation-area.png"))
    # Its line says where (degrees and MGRS) and that ru has not acknowledged it yet.
    expect(item).to_contain_text("47,5123°N 34,5861°E")
    expect(item).to_contain_text("MGRS 36T")
    expect(item).to_contain_text("ожидается подтверждение")
    item.locator("a").click()
    expect(page.locator("#map")).to_have_attribute("data-ready", "1")
    assert page.evaluate(f"window.hotlineLayers['{key}'].getRadius()") == RADIUS_M
    assert_local(seen, demo_world, "ru/ru-1")


def test_link_history_chart_shows_each_partys_day(demo_world: Cluster, browser: Browser) -> None:
    page = sign_in(browser, demo_world, "us/us-1", "Maj. Carter")
    seen = recorded(page)

    def charted() -> bool:
        page.goto(url(demo_world, "us/us-1", "/links"))
        figure = page.locator("#history-us-ru-ru")
        return int(figure.get_attribute("data-points") or 0) >= 2

    wait_for(charted, timeout=90, what="round trips charted")
    page.locator("#links tr[data-party=ru] a.history-link").first.click()
    figure = page.locator("#history-us-ru-ru")
    expect(figure).to_be_visible()
    assert page.evaluate("location.hash") == "#history-us-ru-ru"
    up = figure.locator("rect.band-up")
    expect(up.first).to_be_visible()
    assert float(figure.get_attribute("data-max-rtt") or 0) > 0
    rtts = [
        float(x)
        for x in figure.locator("circle.rtt").evaluate_all(
            "(nodes) => nodes.map((n) => n.dataset.rttMs)"
        )
    ]
    assert rtts and all(0 < r < 60_000 for r in rtts)
    figure.screenshot(path=str(ARTIFACTS / "link-history.png"))
    assert_local(seen, demo_world, "us/us-1")


def test_a_message_prints_to_pdf_in_two_languages(demo_world: Cluster, browser: Browser) -> None:
    page = sign_in(browser, demo_world, "ru/ru-1", "Lt. Col. Orlova")
    seen = recorded(page)
    notice = next(
        m
        for m in demo_world.inbox("ru/ru-1", "us-ru-ua")
        if m["body"].get("form") == "deconfliction-notice"
    )
    index = notice["index"]
    page.goto(url(demo_world, "ru/ru-1", f"/message/us-ru-ua/{index}"))
    page.click("#print-view")
    expect(page.locator("#verification")).to_contain_text("us-ru-ua")
    page.screenshot(path=str(ARTIFACTS / "record.png"), full_page=True)
    printed = ARTIFACTS / "record-print.pdf"
    page.emulate_media(media="print")
    page.pdf(path=str(printed), format="A4")
    text = pdf_text(printed.read_bytes())
    for expected in ("Уведомление о деконфликтации", "Deconfliction notice", "MGRS", "us/us-1"):
        assert expected in text, expected
    # The station's own PDF (reportlab), fetched with the page's session.
    got = page.request.get(url(demo_world, "ru/ru-1", f"/message/us-ru-ua/{index}/record.pdf"))
    assert got.ok and got.headers["content-type"] == "application/pdf"
    (ARTIFACTS / "record.pdf").write_bytes(got.body())
    text = pdf_text(got.body())
    for expected in (
        "Запись сообщения us-ru-ua",
        "Energy repair coordination cell",
        "Квитанции",
        "Контрольная точка",
        "Местоположение",
        "доставлено: ua/ua-1",
    ):
        assert expected in text, expected
    assert_local(seen, demo_world, "ru/ru-1")


def test_compose_sets_the_point_from_a_click_on_the_map(
    demo_world: Cluster, browser: Browser
) -> None:
    page = sign_in(browser, demo_world, "us/us-1", "Maj. Carter")
    seen = recorded(page)
    page.goto(url(demo_world, "us/us-1", "/compose?form=deconfliction-notice"))
    pick = page.locator("#pick-area")
    expect(pick).to_have_attribute("data-ready", "1")
    pick.click(position={"x": 200, "y": 150})  # from the map's outer (border) edge
    lat = float(page.input_value('input[name="area.lat"]'))
    lon = float(page.input_value('input[name="area.lon"]'))
    # The typed-in point is where the click was: the map puts it under the cursor
    # (within a pixel: the map's 1 px border, and 5 decimals of a degree).
    at = page.evaluate(
        """([lat, lon]) => {
          const map = window.hotlineMap;
          const p = map.latLngToContainerPoint([lat, lon]);
          return [p.x + map.getContainer().clientLeft, p.y + map.getContainer().clientTop];
        }""",
        [lat, lon],
    )
    assert at[0] == pytest.approx(200, abs=1.5) and at[1] == pytest.approx(150, abs=1.5)
    assert page.evaluate("window.hotlineLayers.picked.getLatLng().lat") == pytest.approx(lat)
    # Typing moves the point and draws the radius to scale.
    page.fill('input[name="area.lat"]', "47.5123")
    page.fill('input[name="area.lon"]', "34.5861")
    page.fill('input[name="area.radius_km"]', "5")
    picked = page.evaluate(
        "() => { const l = window.hotlineLayers.picked; const c = l.getLatLng();"
        " return [c.lat, c.lng, l.getRadius()]; }"
    )
    assert picked == [*CENTER, RADIUS_M]
    page.screenshot(path=str(ARTIFACTS / "compose-map.png"), full_page=True)
    assert_local(seen, demo_world, "us/us-1")
