"""Key events through every relay (issue 13 part 2): ``hotline station rotate`` with two
independent relays, one of them down while the key changes.

The revocation of the old key must reach every relay's log, or the old key stays usable
at the relay that missed it. The station keeps what each relay has not logged yet in its
store (surviving a restart) and hands it over when it next links to that relay.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from websockets.exceptions import WebSocketException

from hotline.errors import HotlineError, RevokedKey, Unavailable
from hotline.home import load_roster
from hotline.keys import (
    StationCertificate,
    StationKey,
    load_key,
    parse_certificate,
    parse_revocation,
)
from hotline.roster import Roster
from hotline.rotate import relay_session
from hotline.station.client import StationClient

from .netutil import PASSPHRASE, Cluster, Proc, wait_for

pytestmark = pytest.mark.network

US, RU, CHANNEL = "us/us-1", "ru/ru-1", "us-ru"


def _refused(url: str, roster: Roster, key: StationKey, cert: StationCertificate) -> bool:
    """Whether the relay at ``url`` refuses ``key`` as revoked (False: it lets it in, or
    is not answering)."""
    try:
        with relay_session(url, roster, key, cert, None, timeout=10):
            return False
    except RevokedKey:
        return True
    except (Unavailable, HotlineError, WebSocketException):  # closed meanwhile: ask again
        return False


def _rotate(c: Cluster, us_dir: Path, drain: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hotline",
            "station",
            "rotate",
            "--dir",
            str(us_dir),
            "--party-dir",
            str(c.net.root / "parties" / "us"),
            "--drain-timeout",
            str(drain),
            "--confirm-timeout",
            "5",
        ],
        env={**os.environ, "HOTLINE_PASSPHRASE": PASSPHRASE},
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=240,
    )


def _after_reaches_ru(c: Cluster) -> None:
    """Traffic goes on with the new key: "after" reaches ru beside "before"."""
    c.send(US, CHANNEL, "after")
    wait_for(
        lambda: {"before", "after"} <= {m["body"]["text"] for m in c.client(RU).inbox(CHANNEL)},
        timeout=60,
        what="after delivered",
    )


def _cluster(root: Path, ch_mode: str | None = None) -> Cluster:
    """us-1 and ru-1 on relay.ae and relay.ch (``ch_mode``: relay.ch is tests/liar.py's),
    both linked to both."""
    c = Cluster(
        root,
        stations={"us": ["us-1"], "ru": ["ru-1"]},
        channels={CHANNEL: {"members": ["us", "ru"], "link_test_seconds": 2}},
        extra_relays=("relay.ch",),
    )
    for d in c.net.stations.values():
        with (d / "station.toml").open("a") as f:
            f.write("audit_seconds = 3\n")
    if ch_mode is not None:
        d, port = c.net.more_relays["relay.ch"]
        c.more_relays["relay.ch"] = Proc(
            ["--dir", str(d), "--port", str(port), "--mode", ch_mode],
            root / "relay.ch.log",
            module="tests.liar",
        )
    c.start()
    for ident in c.stations:
        wait_for(
            lambda i=ident: all(p["connected"] for p in c.status(i)["relays"].values()),
            what=f"{ident} linked to both relays",
        )
    return c


def test_a_relay_down_during_rotate_gets_the_revocation_when_linked_again(
    tmp_path: Path,
) -> None:
    c = _cluster(tmp_path)
    try:
        us_dir = c.net.stations[US]
        roster = load_roster(us_dir / "roster.note")
        old_cert = parse_certificate(
            (us_dir / "station.cert").read_bytes(), roster.parties["us"].root
        )
        ch_url = f"ws://127.0.0.1:{c.net.more_relays['relay.ch'][1]}/ws"
        c.send(US, CHANNEL, "before")
        c.more_relays["relay.ch"].stop()  # relay.ch is down while the key changes
        rotate = _rotate(c, us_dir)
        assert rotate.returncode == 0, rotate.stdout + rotate.stderr
        out = rotate.stdout
        # Per relay: relay.ae has logged the revocation, relay.ch has it pending.
        assert "relay.ae: revocation logged" in out, out
        assert "relay.ch: revocation pending" in out, out
        (retired,) = (us_dir / "retired").glob("*.key")
        old_key = load_key(retired, PASSPHRASE)
        assert isinstance(old_key, StationKey) and old_key.signing_public == old_cert.signing
        assert _refused(c.net.relay_url, roster, old_key, old_cert)
        # The station restarts before it links to relay.ch again: what relay.ch owes is
        # in its store, not in its memory.
        c.stations[US].stop()
        c.start_station(US)
        c.start_more_relay("relay.ch")
        wait_for(
            lambda: _refused(ch_url, roster, old_key, old_cert),
            timeout=60,
            what="relay.ch refuses the old key",
        )
        assert _refused(c.net.relay_url, roster, old_key, old_cert)
        # The revocation is in both relays' logs of the channel, as ru-1 mirrors them.
        with c.station_store(US) as store:
            (revocation,) = store.statements("revocation")
        digest = hashlib.sha256(revocation).digest()

        def logged_by() -> set[int]:
            with c.station_store(RU) as store:
                return {
                    position
                    for position in (0, 1)
                    if any(e.hash == digest for e in store.key_events(CHANNEL, position))
                }

        wait_for(lambda: logged_by() == {0, 1}, timeout=60, what="revocation in both logs")
        # And the station reports nothing pending any more.
        wait_for(
            lambda: not [e for e in c.client(US).key_events()["events"] if e["pending"]],
            timeout=60,
            what="nothing pending at us-1",
        )
        # Traffic goes on with the new key through both relays.
        _after_reaches_ru(c)
    finally:
        c.close()


def test_a_relay_that_says_ok_to_the_revocation_but_never_logs_it_is_named(
    tmp_path: Path,
) -> None:
    """relay.ch answers ok to the revocation and leaves it out of its log (the old key
    stays usable there): the station keeps owing it to relay.ch, rotate says so, and the
    path audit of both stations names relay.ch and the revocation within the bound."""
    c = _cluster(tmp_path, ch_mode="omitrevoke")
    try:
        us_dir = c.net.stations[US]
        rotate = _rotate(c, us_dir)
        assert rotate.returncode == 0, rotate.stdout + rotate.stderr
        assert "relay.ae: revocation logged" in rotate.stdout, rotate.stdout
        assert "relay.ch: revocation pending" in rotate.stdout, rotate.stdout
        with c.station_store(US) as store:
            (revocation,) = store.statements("revocation")
        short = hashlib.sha256(revocation).hexdigest()[:16]

        def named(ident: str) -> list[dict[str, object]]:
            return [
                a
                for a in c.alarms(ident)
                if a["kind"] == "path"
                and a["text"] == "path-omits-key"
                and a["params"]["hash"] == short
            ]

        for ident in (US, RU):
            (alarm,) = wait_for(lambda i=ident: named(i), timeout=30, what=f"{ident} names it")
            assert alarm["params"]["relay"] == "relay.ch"
            assert alarm["params"]["seen"] == "relay.ae"
        # Still owed to relay.ch (its ok is not taken for the log): sent again each session.
        assert c.status(US)["relays"]["relay.ch"]["key_events_owed"] == 1
        assert c.status(US)["relays"]["relay.ae"]["key_events_owed"] == 0
    finally:
        c.close()


def _held_key(us_dir: Path, cert: StationCertificate) -> StationKey:
    """The key ``cert`` certifies, from the station's ``retired/``."""
    for path in (us_dir / "retired").glob("*.key"):
        key = load_key(path, PASSPHRASE)
        if isinstance(key, StationKey) and key.signing_public == cert.signing:
            return key
    raise AssertionError("the retired key is not in retired/")


def test_a_key_rotated_twice_while_a_relay_was_down_is_revoked_there_too(
    tmp_path: Path,
) -> None:
    """relay.ch is down through two rotations (k0 -> k1 -> k2): it never logged k1's
    certificate, so it would refuse k1's revocation. Linked again, the station hands it
    k1's certificate first, then both revocations: relay.ch refuses k0 and k1, logs each
    certificate before its revocation, and nothing stays pending."""
    c = _cluster(tmp_path)
    try:
        us_dir = c.net.stations[US]
        roster = load_roster(us_dir / "roster.note")
        root = roster.parties["us"].root
        ch_url = f"ws://127.0.0.1:{c.net.more_relays['relay.ch'][1]}/ws"
        certs = [parse_certificate((us_dir / "station.cert").read_bytes(), root)]
        c.send(US, CHANNEL, "before")
        c.more_relays["relay.ch"].stop()
        for _ in range(2):
            rotate = _rotate(c, us_dir)
            assert rotate.returncode == 0, rotate.stdout + rotate.stderr
            assert "relay.ae: revocation logged" in rotate.stdout, rotate.stdout
            certs.append(parse_certificate((us_dir / "station.cert").read_bytes(), root))
        old = [(_held_key(us_dir, cert), cert) for cert in certs[:2]]
        for key, cert in old:
            assert _refused(c.net.relay_url, roster, key, cert)
        c.start_more_relay("relay.ch")
        for i, (key, cert) in enumerate(old):
            wait_for(
                lambda k=key, ce=cert: _refused(ch_url, roster, k, ce),
                timeout=60,
                what=f"relay.ch refuses k{i}",
            )
        wait_for(
            lambda: not [e for e in c.client(US).key_events()["events"] if e["pending"]],
            timeout=60,
            what="nothing pending at us-1",
        )
        # In relay.ch's log (as ru-1 mirrors it): each certificate before its revocation.
        with c.station_store(US) as store:
            revocations = store.statements("revocation")
        assert len(revocations) == 2

        def positions() -> dict[bytes, int] | None:
            with c.station_store(RU) as store:
                at = {e.hash: e.index for e in store.key_events(CHANNEL, 1)}
            wanted = [hashlib.sha256(x).digest() for x in revocations]
            wanted += [hashlib.sha256(cert.encode()).digest() for cert in certs]
            return at if all(w in at for w in wanted) else None

        at = wait_for(positions, timeout=60, what="key events in relay.ch's log at ru-1")
        for data in revocations:
            signing = parse_revocation(data, root).signing
            (revoked,) = [cert for cert in certs if cert.signing == signing]
            certified = at[hashlib.sha256(revoked.encode()).digest()]
            assert certified < at[hashlib.sha256(data).digest()]
        _after_reaches_ru(c)
    finally:
        c.close()


def test_a_link_never_idle_still_hands_over_the_revocation(tmp_path: Path) -> None:
    """us-1 sends without pause through the whole rotation, and relay.ch takes each post
    5 s late (tests/liar.py ``slow``), so that link always has posts in flight: the
    revocation goes once what was posted before it is taken (its watermark), not once the
    link is idle. Both relays refuse the old key while the stream goes on, and nothing
    posted is refused."""
    c = _cluster(tmp_path, ch_mode="slow")
    stop = threading.Event()
    sent: list[str] = []
    errors: list[BaseException] = []

    def stream() -> None:
        client = StationClient.for_dir(us_dir)
        n = 0
        try:
            while not stop.is_set():
                try:
                    client.send(CHANNEL, text=f"m{n}")
                except Unavailable:
                    time.sleep(0.05)
                    continue
                sent.append(f"m{n}")
                n += 1
                time.sleep(0.01)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            client.close()

    try:
        us_dir = c.net.stations[US]
        roster = load_roster(us_dir / "roster.note")
        old_cert = parse_certificate(
            (us_dir / "station.cert").read_bytes(), roster.parties["us"].root
        )
        urls = [
            c.net.relay_url,
            f"ws://127.0.0.1:{c.net.more_relays['relay.ch'][1]}/ws",
        ]
        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        wait_for(lambda: len(sent) >= 10, what="the stream under way")
        rotate = _rotate(c, us_dir, drain=5)  # the outbox may never be empty: no matter
        assert rotate.returncode == 0, rotate.stdout + rotate.stderr
        old_key = _held_key(us_dir, old_cert)
        for url in urls:
            wait_for(
                lambda u=url: _refused(u, roster, old_key, old_cert),
                timeout=60,
                what=f"{url} refuses the old key while the stream goes on",
            )
        assert streamer.is_alive() and not errors, errors
        stop.set()
        streamer.join(timeout=30)
        assert not errors, errors

        def states() -> set[str] | None:
            got = c.sent(US, CHANNEL)
            done = len(got) >= len(sent) and all(m["state"] != "queued" for m in got)
            return {m["state"] for m in got} if done else None

        assert wait_for(states, timeout=60, what="every message answered") == {"accepted"}
    finally:
        stop.set()
        c.close()
