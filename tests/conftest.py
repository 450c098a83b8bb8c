"""Shared fixtures: the public vectors, a small world of parties and stations."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from hotline.keys import KeyRing, PartyKey, StationCertificate, StationKey
from hotline.notes import NoteSigner
from hotline.roster import Roster, open_roster, roster_text, sign_roster

# The suite must pass on a busy 2-core machine: how fast hypothesis can generate or run
# an example is not what any property here is about, so no deadline and no speed checks.
settings.register_profile(
    "hotline",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("hotline")


def vectors_dir() -> Path:
    """../shared/vectors beside the checkout (HOTLINE_VECTORS overrides)."""
    env = os.environ.get("HOTLINE_VECTORS")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "vectors"
    if not path.is_dir():
        raise RuntimeError(f"public test vectors not found at {path}; set HOTLINE_VECTORS")
    return path


@dataclass
class World:
    parties: dict[str, PartyKey]
    stations: dict[str, StationKey]
    certs: dict[str, StationCertificate]
    relay: NoteSigner
    roster: Roster
    keyring: KeyRing
    relays: dict[str, NoteSigner] = field(default_factory=dict)  # every relay, by name


def make_world(now: int | None = None, more_relays: tuple[str, ...] = ()) -> World:
    """Parties us, ru, ua, ae with a station each (but ae), a roster naming relay.ae and
    ``more_relays`` (independent relays, each with its own key)."""
    t = int(time.time()) if now is None else now
    parties = {p: PartyKey.generate(p) for p in ("us", "ru", "ua", "ae")}
    stations = {p: StationKey.generate(p, f"{p}-1") for p in ("us", "ru", "ua")}
    certs = {p: parties[p].certify(s, t - 3600, t + 86400) for p, s in stations.items()}
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    relay = NoteSigner("relay.ae", Ed25519PrivateKey.generate())
    relays = {relay.name: relay}
    relays.update({n: NoteSigner(n, Ed25519PrivateKey.generate()) for n in more_relays})
    keys = [r.verifier.encode() for r in relays.values()]
    langs = {"us": "en", "ru": "ru", "ua": "uk", "ae": "en"}
    text = roster_text(
        "abu-dhabi",
        {p: {**k.public_keys(), "language": langs[p]} for p, k in parties.items()},
        {
            "us-ru": {"members": ["us", "ru"]},
            "us-ru-ua": {"members": ["us", "ru", "ua"]},
        },
        keys[0] if len(keys) == 1 else keys,
    )
    note = sign_roster(text, parties["us"])
    for p in ("ru", "ua", "ae"):
        note = sign_roster(note, parties[p])
    roster = open_roster(note.encode())
    keyring = KeyRing(roster.roots())
    for c in certs.values():
        keyring.add_certificate(c.encode())
    return World(parties, stations, certs, relay, roster, keyring, relays)


@pytest.fixture(scope="session")
def world() -> World:
    return make_world()


def _database(kind: str) -> Iterator[str | None]:
    """None for SQLite; for PostgreSQL a URL whose search_path is a fresh schema."""
    if kind == "sqlite":
        yield None
        return
    dsn = os.environ.get("HOTLINE_TEST_POSTGRES")
    if not dsn:
        pytest.skip(
            "PostgreSQL tests need HOTLINE_TEST_POSTGRES=postgresql://... "
            "(.ci/run sets it and starts the server)"
        )
    import psycopg

    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL at {dsn} is not reachable: {exc}")
    schema = "hotline_test_" + secrets.token_hex(6)
    conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield dsn + ("&" if "?" in dsn else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def relay_database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Run a test once on each relay store."""
    yield from _database(request.param)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def relay_database_module(request: pytest.FixtureRequest) -> Iterator[str | None]:
    yield from _database(request.param)
