"""A form written by ua in Ukrainian is read in Russian at ru and in English at us."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .netutil import Cluster, hotline, wait_for

pytestmark = pytest.mark.network

REPORT_TOML = """
time = 2026-11-25T02:10:00Z
incident = "drone-strike"
notes = "Уламки впали на житловий квартал."

[location]
radius_km = 3
[location.point]
lat = 50.45
lon = 30.52

[[counts]]
means = "drones-launched"
count = 183
source = "Повітряні сили ЗСУ"

[[counts]]
means = "ballistic-missiles"
count = 2
source = "Повітряні сили ЗСУ"

[[counts]]
means = "drones-downed"
count = 95
source = "Повітряні сили ЗСУ"

[casualties]
killed_civilian = 0
injured_civilian = 4
source = "ДСНС України"
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    c = Cluster(tmp_path_factory.mktemp("forms")).start()
    yield c
    c.close()


def test_incident_report_from_ua_reads_in_russian_and_english(
    cluster: Cluster, tmp_path: Path
) -> None:
    report = tmp_path / "report.toml"
    report.write_text(REPORT_TOML)
    ua, ru, us = (str(cluster.net.stations[i]) for i in ("ua/ua-1", "ru/ru-1", "us/us-1"))
    wait_for(
        lambda: (
            hotline(
                "send",
                "--dir",
                ua,
                "us-ru-ua",
                "-p",
                "IMMEDIATE",
                "--form",
                "incident-report",
                "--file",
                str(report),
            ).returncode
            == 0
        ),
        what="ua sends the report",
    )
    wait_for(lambda: cluster.inbox("ru/ru-1"), what="report at ru")
    index = cluster.inbox("ru/ru-1")[0]["index"]
    ru_view = hotline("show", "--dir", ru, "us-ru-ua", str(index)).stdout
    assert "Донесение об инциденте" in ru_view and "НЕМЕДЛЕННО" in ru_view
    assert "Тип инцидента: Удар беспилотников" in ru_view
    assert "Запущено беспилотников: 183" in ru_view and "Сбито беспилотников: 95" in ru_view
    assert "Баллистические ракеты: 2" in ru_view and "Ранено, гражданских: 4" in ru_view
    assert "Уламки впали на житловий квартал." in ru_view  # the sender's own words
    wait_for(lambda: cluster.inbox("us/us-1"), what="report at us")
    us_view = json.loads(hotline("show", "--dir", us, "us-ru-ua", str(index), "--json").stdout)
    fields = dict(us_view["view"]["fields"])
    assert us_view["view"]["title"] == "Incident report"
    assert fields["Incident type"] == "Drone strike"
    assert "Drones launched: 183" in fields["Counts by means"]
    assert "Ballistic missiles: 2" in fields["Counts by means"]
    assert "Injured, civilian: 4" in fields["Casualties"]
    assert fields["Time (UTC)"] == "25 November 2026, 02:10:00 UTC"


def test_an_invalid_form_is_refused_before_sending_in_the_senders_language(
    cluster: Cluster, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(REPORT_TOML.replace("lat = 50.45", "lat = 150.45"))
    ua = str(cluster.net.stations["ua/ua-1"])

    def messages_queued() -> int:
        # Receipts and the hourly logged link test may be queued meanwhile; count messages.
        return sum(1 for item in cluster.sent("ua/ua-1") if item["kind"] == "MESSAGE")

    before = messages_queued()
    out = hotline("send", "--dir", ua, "us-ru-ua", "--form", "incident-report", "--file", str(bad))
    assert out.returncode == 3
    assert "координати: широта від -90 до 90" in out.stderr
    neg = tmp_path / "neg.toml"
    neg.write_text(REPORT_TOML.replace("count = 95", "count = -95"))
    out = hotline("send", "--dir", ua, "us-ru-ua", "--form", "incident-report", "--file", str(neg))
    assert out.returncode == 3 and "не може бути від'ємним" in out.stderr
    assert messages_queued() == before  # nothing was queued


def test_free_text_shows_the_original_and_says_when_no_translation_exists(cluster: Cluster) -> None:
    cluster.send("ru/ru-1", "us-ru", "Подтверждаем получение.")

    def arrived() -> list[dict[str, Any]]:
        return [m for m in cluster.inbox("us/us-1", "us-ru") if m["view"]["kind"] == "text"]

    message = wait_for(arrived, what="text at us")[0]
    assert message["view"]["original"] == "Подтверждаем получение."
    assert message["view"]["lang"] == "ru"
    assert message["view"]["translation"] is None
    assert message["view"]["note"] == "no translation available"
