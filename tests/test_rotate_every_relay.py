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
from pathlib import Path

import pytest

from hotline.errors import HotlineError, RevokedKey, Unavailable
from hotline.home import load_roster
from hotline.keys import StationCertificate, StationKey, load_key, parse_certificate
from hotline.roster import Roster
from hotline.rotate import relay_session

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
    except (Unavailable, HotlineError):
        return False


def _rotate(c: Cluster, us_dir: Path) -> subprocess.CompletedProcess[str]:
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
            "120",
            "--confirm-timeout",
            "5",
        ],
        env={**os.environ, "HOTLINE_PASSPHRASE": PASSPHRASE},
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=240,
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
        c.send(US, CHANNEL, "after")
        wait_for(
            lambda: {"before", "after"} <= {m["body"]["text"] for m in c.client(RU).inbox(CHANNEL)},
            timeout=60,
            what="after delivered",
        )
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
