"""`hotline station rotate` over loopback, with messages in flight: nothing is lost, the
old key is refused after its revocation, the new key is accepted, and the key history in
the log says so in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hotline.errors import RevokedKey
from hotline.home import load_roster
from hotline.keys import StationKey, load_key, parse_certificate
from hotline.rotate import relay_session
from hotline.transcript import verify

from .netutil import PASSPHRASE, Cluster, wait_for

pytestmark = pytest.mark.network

US, RU, CHANNEL = "us/us-1", "ru/ru-1", "us-ru"


def _from(c: Cluster, reader: str, party: str) -> list[str]:
    inbox = c.client(reader).inbox(CHANNEL)
    return sorted(m["body"]["text"] for m in inbox if m["party"] == party)


def test_rotate_keeps_every_message_and_retires_the_old_key(tmp_path: Path) -> None:
    c = Cluster(tmp_path).start()
    try:
        us_dir = c.net.stations[US]
        roster = load_roster(us_dir / "roster.note")
        old_cert = parse_certificate(
            (us_dir / "station.cert").read_bytes(), roster.parties["us"].root
        )
        sent = [f"before {i}" for i in range(4)]
        for text in sent:
            c.send(US, CHANNEL, text, "PRIORITY")
        rotate = subprocess.Popen(
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
            ],
            env={**os.environ, "HOTLINE_PASSPHRASE": PASSPHRASE},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        replies = []
        for i in range(4):  # in flight while the key changes, both ways
            sent.append(f"during {i}")
            c.send(US, CHANNEL, sent[-1], "PRIORITY")
            replies.append(f"ru during {i}")
            c.send(RU, CHANNEL, replies[-1])
        out, err = rotate.communicate(timeout=180)
        assert rotate.returncode == 0, out + err
        assert "rotated" in out and "revoked" in out
        new_cert = parse_certificate(
            (us_dir / "station.cert").read_bytes(), roster.parties["us"].root
        )
        assert new_cert.signing != old_cert.signing
        for i in range(3):  # the new key signs what comes after
            sent.append(f"after {i}")
            c.send(US, CHANNEL, sent[-1], "FLASH")
        # Nothing lost: ru reads every message of us, us every reply of ru.
        wait_for(lambda: _from(c, RU, "us") == sorted(sent), 60, "every us message at ru")
        wait_for(lambda: _from(c, US, "ru") == sorted(replies), 60, "every ru reply at us")
        assert not [a for a in c.alarms(RU) if a["kind"] in ("verification", "bad-certificate")]
        assert all(s["state"] == "accepted" for s in c.sent(US, CHANNEL))
        # The old key is refused from now on: the relay will not let it in again.
        (retired,) = (us_dir / "retired").glob("*.key")
        old_key = load_key(retired, PASSPHRASE)
        assert isinstance(old_key, StationKey) and old_key.signing_public == old_cert.signing
        with (
            pytest.raises(RevokedKey),
            relay_session(c.net.relay_url, roster, old_key, old_cert, None),
        ):
            pass
        # ru's record verifies, its key history in log order: both certificates of
        # us/us-1, then the revocation of the old key.
        doc: dict[str, Any] = json.loads(c.client(RU).export(CHANNEL))
        report = verify(doc)
        assert report.ok, [str(f) for f in report.failures]
        history = [line for line in report.key_history if "us/us-1" in line]
        old_hex, new_hex = old_cert.signing.hex()[:16], new_cert.signing.hex()[:16]
        assert [h.split(" ", 1)[1].split(" (")[0] for h in history] == [
            f"certificate of us/us-1 key {old_hex}",
            f"certificate of us/us-1 key {new_hex}",
            f"revocation of us/us-1 key {old_hex}",
        ]
    finally:
        c.close()
