"""Stage timestamps (HOTLINE_STAMPS): every stage of a message's path, named by its
envelope hash only; off by default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hotline import stamps

from .netutil import Cluster, wait_for

STAGES = {
    "api_accepted",
    "outbox_committed",
    "frame_sent",
    "relay_received",
    "relay_committed",
    "push_queued",
    "station_received",
    "verified",
    "committed",
    "visible",
}


def test_off_unless_the_variable_names_a_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(stamps.ENV, raising=False)
    assert not stamps._Stamps().on


def test_a_stamp_is_stage_place_hash_and_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(stamps.ENV, str(tmp_path))
    s = stamps._Stamps()
    s.write("verified", "ru/ru-1", [bytes(range(32))], 123)
    s.flush()  # lines are written out every FLUSH_S and at exit
    (f,) = tmp_path.glob("stamps-*.txt")
    assert f.read_text() == "verified ru/ru-1 0001020304050607 123\n"


def test_every_stage_is_stamped_and_no_body_is_written(tmp_path: Path) -> None:
    out = tmp_path / "stamps"
    out.mkdir()
    os.environ[stamps.ENV] = str(out)
    try:
        c = Cluster(
            tmp_path / "net",
            stations={"us": ["us-1"], "ru": ["ru-1"]},
            channels={"us-ru": {"members": ["us", "ru"]}},
        )
        c.start()
    finally:
        del os.environ[stamps.ENV]
    secret = "the body nobody but ru may read"
    try:
        sent = c.send("us/us-1", "us-ru", secret)
        wait_for(lambda: c.inbox("ru/ru-1"), what="delivered")
        short = sent["hash"][:16]

        def seen() -> dict[str, set[str]]:
            lines = [
                ln.split() for f in out.glob("stamps-*.txt") for ln in f.read_text().splitlines()
            ]
            where: dict[str, set[str]] = {}
            for stage, place, digest, ns in lines:
                assert int(ns) > 0 and len(digest) == 16
                if digest == short:
                    where.setdefault(stage, set()).add(place)
            return where

        where = wait_for(lambda: (w := seen()).keys() >= STAGES and w, what="every stage")
    finally:
        c.close()
    assert where["relay_committed"] == {"relay"}
    assert where["api_accepted"] == {"us/us-1"}
    assert "ru/ru-1" in where["visible"]
    for f in out.glob("stamps-*.txt"):
        text = f.read_text()
        assert secret not in text
