"""The operator console in real headless Chromium, against a relay and three stations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from .netutil import Cluster, wait_for

pytestmark = pytest.mark.network

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "console"
PASSWORD = "correct horse battery staple"

if not Path(CHROMIUM).exists():  # .ci/run installs Debian's chromium
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


def add_operator(c: Cluster, ident: str, name: str) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hotline",
            "operator",
            "add",
            "--dir",
            str(c.net.stations[ident]),
            "--name",
            name,
        ],
        env={**os.environ, "HOTLINE_OPERATOR_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    c = Cluster(tmp_path_factory.mktemp("console")).start()
    add_operator(c, "us/us-1", "Maj. Carter")
    add_operator(c, "ru/ru-1", "Lt. Col. Orlova")
    yield c
    c.close()


@pytest.fixture(scope="module")
def browser() -> Any:
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield b
        b.close()


def url(c: Cluster, ident: str, path: str = "/") -> str:
    return f"http://127.0.0.1:{c.net.api_ports[ident]}{path}"


def sign_in(browser: Browser, c: Cluster, ident: str, name: str) -> Page:
    page = browser.new_context().new_page()
    page.goto(url(c, ident, "/login"))
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    expect(page.locator("#inbox")).to_be_visible()
    return page


def test_flash_sent_arrives_live_is_verified_acknowledged_and_seen(
    cluster: Cluster, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    ru = sign_in(browser, cluster, "ru/ru-1", "Lt. Col. Orlova")
    ru.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    us = sign_in(browser, cluster, "us/us-1", "Maj. Carter")
    us.goto(url(cluster, "us/us-1", "/compose"))
    us.select_option("#channel", "us-ru")
    us.select_option("#precedence", "FLASH")
    us.fill("#text", "Unannounced flight near the line of contact. Confirm intent.")
    us.click("#send")
    expect(us.locator("#sent-state")).to_have_attribute("data-state", "accepted", timeout=15000)
    # ru sees it arrive without reloading, with a FLASH alarm and its sound.
    row = ru.locator("#inbox tbody tr", has_text="Unannounced flight")
    expect(row).to_be_visible(timeout=15000)
    expect(row).to_have_class("prec-FLASH unread")
    # The alarm reads in ru's operator's language, its text too (not only its kind).
    banner = ru.locator("#alarm-banner")
    expect(banner).to_contain_text("МОЛНИЯ от us/us-1 в канале us-ru", timeout=10000)
    assert "FLASH" not in banner.inner_text()
    wait_for(lambda: ru.evaluate("window.hotlineBeeps") >= 1, what="FLASH sound")
    ru.screenshot(path=str(ARTIFACTS / "inbox.png"), full_page=True)
    row.locator("a").click()
    expect(ru.locator("#verified")).to_have_class("badge ok")
    expect(ru.locator("#original")).to_have_text(
        "Unannounced flight near the line of contact. Confirm intent."
    )
    ru.screenshot(path=str(ARTIFACTS / "message.png"), full_page=True)
    ru.fill("#reply", "Training flight; we will move it west.")
    ru.click("#acknowledge")
    # us sees the acknowledgment, by name, without reloading.
    ack = us.locator("#parties tr[data-party=ru] td.acknowledged")
    expect(ack).to_contain_text("Lt. Col. Orlova", timeout=15000)
    expect(ack).to_contain_text("Training flight; we will move it west.")
    expect(us.locator("#sent-state")).to_have_attribute("data-state", "accepted")
    expect(us.locator("#parties tr[data-party=ru] td.delivered")).to_contain_text("ru/ru-1")
    ru.goto(url(cluster, "ru/ru-1", "/links"))
    expect(ru.locator("#links tr[data-party=us] td.state").first).to_be_visible()
    expect(ru.locator("#links tr.path")).to_have_count(0)  # one relay: no rows per path
    ru.screenshot(path=str(ARTIFACTS / "links.png"), full_page=True)
    assert dialogs == []


def test_a_message_with_script_renders_as_text(cluster: Cluster, browser: Browser) -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    cluster.send("us/us-1", "us-ru", evil, "ROUTINE")
    ru = sign_in(browser, cluster, "ru/ru-1", "Lt. Col. Orlova")
    fired: list[str] = []
    ru.on("dialog", lambda d: (fired.append(d.message), d.dismiss()))
    row = ru.locator("#inbox tbody tr", has_text="<script>alert(1)</script>")
    expect(row).to_be_visible(timeout=15000)
    row.locator("a").click()
    expect(ru.locator("#original")).to_have_text(evil)
    assert ru.locator("#body script").count() == 0 and ru.locator("#body img").count() == 0
    assert fired == []


def test_the_console_is_protected_like_a_bank_page(cluster: Cluster) -> None:
    base = url(cluster, "us/us-1", "")
    sent_before = len(cluster.sent("us/us-1"))
    assert httpx.get(base + "/").status_code == 303  # signed out: to the login page
    bad = httpx.post(base + "/login", data={"name": "Maj. Carter", "password": "wrong password"})
    assert bad.status_code == 401
    with httpx.Client(base_url=base) as client:
        r = client.post("/login", data={"name": "Maj. Carter", "password": PASSWORD})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = client.get("/")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert "Maj. Carter" in page.text and "api-token" not in page.text
        # A change without the CSRF token is refused and changes nothing.
        refused = client.post("/compose", data={"channel": "us-ru", "text": "forged"})
        assert refused.status_code == 403
    assert len(cluster.sent("us/us-1")) == sent_before
