"""`hotline demo --database postgresql://...`: both topologies in the demo. The relays keep
their logs in PostgreSQL (a schema each), relay.ae runs as two processes on its schema, one
is stopped while messages flow (stations move to the other), then the whole of relay.ae:
nothing us sent is lost at ru, relay.ae took what was sent while one process was down, and
the demo drops the schemas it made. A URL that cannot be reached is a clear error."""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline import demo
from hotline.envelope import Kind
from hotline.errors import Malformed, Unavailable
from hotline.station.store import StationStore

pytestmark = pytest.mark.network

# The ports the demo takes above its base: stations' APIs, relay.ae's second process, relay.ch.
OFFSETS = (0, 1, 2, 3, demo.AE_SECOND_OFFSET, 90)


@pytest.fixture
def postgres() -> Iterator[str]:
    dsn = os.environ.get("HOTLINE_TEST_POSTGRES")
    if not dsn:
        pytest.skip(
            "the PostgreSQL demo needs HOTLINE_TEST_POSTGRES=postgresql://... "
            "(.ci/run sets it and starts the server)"
        )
    import psycopg

    try:
        psycopg.connect(dsn, connect_timeout=5).close()
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL at {dsn} is not reachable: {exc}")
    yield dsn


def _base_port() -> int:
    """A base port whose every port the demo takes is free now."""
    for _ in range(200):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
        probe.close()
        if base + max(OFFSETS) >= 65536:
            continue
        held = []
        try:
            for offset in OFFSETS:
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        return base
    raise AssertionError("no free run of ports for the demo")


def _schemas(dsn: str, names: list[str]) -> list[str]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name = ANY(%s)",
            (names,),
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_demo_on_postgres_moves_stations_between_relay_ae_processes_and_loses_nothing(
    postgres: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "demo"
    asyncio.run(demo.run_demo(root, _base_port(), asyncio.Event(), True, database=postgres))
    out = capsys.readouterr().out
    assert "every station moved to relay.ae's second process" in out
    assert "relay.ae's log holds them all" in out
    assert "stopped cleanly" in out

    # The demo dropped the schemas it made (named in its first lines).
    made = re.search(r"relay stores in PostgreSQL: schemas (\S+), (\S+)", out)
    assert made is not None
    assert _schemas(postgres, [made.group(1), made.group(2)]) == []

    us = StationStore(root / "stations" / "us-1" / "station.db")
    ru = StationStore(root / "stations" / "ru-1" / "station.db")
    try:
        # The FLASH, three messages with one of relay.ae's processes down, three with all
        # of relay.ae down (the station's own link-test records and notices aside: how
        # many of those a run logs depends on its pace).
        sent = [i for i in us.outbox(channel="us-ru") if i.kind == Kind.MESSAGE]
        assert len(sent) == 7
        got = [m for m in ru.messages("us-ru") if m.kind == Kind.MESSAGE]
        taken = {m.hash for m in got}
        assert [item.seq for item in sent if item.hash not in taken] == []  # nothing lost
        assert len(got) == len(taken) == 7  # nothing twice
        # relay.ae (its second process) took each message sent while the first was down.
        for item in sent[1:4]:
            assert "relay.ae" in us.paths_of("us-ru", item.seq), item.seq
    finally:
        us.close()
        ru.close()


def test_demo_names_a_postgres_it_cannot_reach(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://hotline:secret-pw@127.0.0.1:{port}/nowhere"
    with pytest.raises(Unavailable) as caught:
        asyncio.run(demo.run_demo(tmp_path / "demo", 8700, asyncio.Event(), True, database=url))
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}/nowhere" in str(caught.value)
    assert "secret-pw" not in str(caught.value)
    assert not (tmp_path / "demo").exists()  # nothing made before the database answered
    with pytest.raises(Malformed):
        asyncio.run(demo.run_demo(tmp_path / "d2", 8700, asyncio.Event(), True, database="x.db"))
