"""Several relay cores on one PostgreSQL store: the database orders each log, never a
process's memory, so whatever core takes a post, there is one log (no fork, no entry
at an index twice, no time going back), and each answer's proof holds in it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.envelope import ZERO_HASH, envelope_hash, seal
from hotline.leaf import leaf_data
from hotline.merkle import MerkleTree, verify_inclusion
from hotline.notes import open_checkpoint
from hotline.relay.core import Acceptance, RelayCore
from hotline.relay.fanout import Grown, Linked, Stated, parse_event
from hotline.relay.postgres import PostgresRelayStore

from .conftest import World, _database

CHANNEL = "us-ru"


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    yield from (d for d in _database("postgresql") if d is not None)


@contextmanager
def _schema(dsn: str, name: str) -> Iterator[str]:
    """A fresh schema per example (each hypothesis example starts from empty logs)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")
        try:
            yield dsn.split("?")[0] + f"?options=-csearch_path%3D{name}"
        finally:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def _cores(world: World, dsn: str, n: int) -> list[RelayCore]:
    now = world.certs["us"].not_before + 3600
    cores = []
    for i in range(n):
        # Clocks a little apart, as on different machines: times must still not go back.
        core = RelayCore(
            PostgresRelayStore(dsn, f"p{i}"), world.roster, world.relay, lambda i=i: now + i
        )
        for cert in world.certs.values():
            core.register_certificate(cert.encode())
        cores.append(core)
    return cores


def _chain(world: World, party: str, n: int) -> list[bytes]:
    prev, out = ZERO_HASH, []
    for seq in range(1, n + 1):
        raw = seal(
            b"x",
            sender=world.stations[party],
            channel=CHANNEL,
            seq=seq,
            prev=prev,
            recipients=[world.certs["us"], world.certs["ru"]],
            created_ms=(world.certs["us"].not_before + 3600) * 1000,
        )
        out.append(raw)
        prev = envelope_hash(raw)
    return out


def _assert_one_log(world: World, cores: list[RelayCore], answers: list[Acceptance]) -> None:
    store = cores[0].store
    entries = store.entries(CHANNEL, 0, 10**9)
    assert [e.index for e in entries] == list(range(len(entries)))
    times = [e.relay_ms for e in entries]
    assert times == sorted(times), "an entry's time goes back"
    tree = MerkleTree()
    for e in entries:
        tree.append(leaf_data(e.relay_ms, e.envelope, e.kind))
    for core in cores:
        core.refresh(CHANNEL)
        assert core.size(CHANNEL) == tree.size
        assert core.tree(CHANNEL).root() == tree.root()
    for a in answers:
        signed = open_checkpoint(a.checkpoint, world.roster.relay_key)
        assert signed.size == a.checkpoint_size
        assert signed.checkpoint.root == tree.root(signed.size), "a checkpoint off the log"
        leaf = tree.leaf_hash_at(a.entry.index)
        verify_inclusion(leaf, a.entry.index, signed.size, a.proof, signed.checkpoint.root)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4)), min_size=2, max_size=10))
def test_any_core_may_take_any_batch_one_log(
    world: World, postgres: str, plan: list[tuple[int, int]]
) -> None:
    with _schema(postgres, "hotline_shared_prop") as dsn:
        cores = _cores(world, dsn, 3)
        try:
            us, ru = _chain(world, "us", 40), _chain(world, "ru", 40)
            answers: list[Acceptance] = []
            for turn, (which, size) in enumerate(plan):
                chain, ident = (us, "us/us-1") if turn % 2 == 0 else (ru, "ru/ru-1")
                batch = [(ident, chain.pop(0)) for _ in range(min(size, len(chain)))]
                for result in cores[which].accept(batch):
                    assert isinstance(result, Acceptance), result
                    answers.append(result)
            # A post taken again by another core is answered as the same entry.
            first = answers[0]
            (again,) = cores[2].accept([(first.entry.sender, first.entry.envelope)])
            assert isinstance(again, Acceptance) and again.duplicate
            assert again.entry.index == first.entry.index
            _assert_one_log(world, cores, answers)
        finally:
            for core in cores:
                core.store.close()


def test_cores_appending_at_once_are_serialized_by_the_database(
    world: World, postgres: str
) -> None:
    with _schema(postgres, "hotline_shared_race") as dsn:
        cores = _cores(world, dsn, 2)
        answers: list[Acceptance] = []
        failures: list[BaseException] = []

        def post(core: RelayCore, ident: str, chain: list[bytes]) -> None:
            try:
                for i in range(0, len(chain), 3):
                    for r in core.accept([(ident, raw) for raw in chain[i : i + 3]]):
                        assert isinstance(r, Acceptance), r
                        answers.append(r)
            except BaseException as exc:  # reported below, with the log's state
                failures.append(exc)

        threads = [
            threading.Thread(target=post, args=(cores[0], "us/us-1", _chain(world, "us", 60))),
            threading.Thread(target=post, args=(cores[1], "ru/ru-1", _chain(world, "ru", 60))),
        ]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert failures == []
            assert len(answers) == 120
            _assert_one_log(world, cores, answers)
        finally:
            for core in cores:
                core.store.close()


def test_a_notification_parses_into_one_event_or_is_refused() -> None:
    assert parse_event("p1 log us-ru 12") == ("p1", Grown("us-ru", 12))
    assert parse_event("p1 statement revocation 00ff") == ("p1", Stated("revocation", b"\0\xff"))
    assert parse_event('p1 link us-ru {"op": "link"}') == ("p1", Linked("us-ru", '{"op": "link"}'))
    for bad in [
        "",
        "p1 log us-ru",
        "p1 log us-ru -1",
        "p1 log us-ru ١٢",
        "p1 log us-ru " + "9" * 40,
        "p1 statement secret 00",
        "p1 statement certificate zz",
        "p1 shout us-ru x",
        " log us-ru 1",
        "p1 link us-ru " + "x" * 8000,
    ]:
        with pytest.raises(Exception) as info:
            parse_event(bad)
        assert type(info.value).__name__ == "Malformed", bad


def test_a_revocation_taken_by_one_core_is_taken_by_every_core(world: World, postgres: str) -> None:
    with _schema(postgres, "hotline_shared_revoke") as dsn:
        a, b = _cores(world, dsn, 2)
        try:
            now = world.certs["ru"].not_before + 3600
            revocation = world.parties["ru"].revoke(world.certs["ru"], now - 60, "stolen")
            a.register_revocation(revocation.encode())
            # The other core missed the notification (its listener was down): on listening
            # again it reads every statement, and refuses the revoked key from then on.
            taken = b.learn_all()
            assert [(r.ident, r.signing) for r in taken] == [("ru/ru-1", world.certs["ru"].signing)]
            (result,) = b.accept([("ru/ru-1", _chain(world, "ru", 1)[0])])
            assert not isinstance(result, Acceptance)
            assert b.learn("revocation", world.certs["ru"].signing) is not None
        finally:
            a.store.close()
            b.store.close()
