"""A hostile station beside two honest ones: FLASH latency, quiet versus under attack.

Real processes (`hotline relay serve`, two `hotline station serve`), as in production.
The hostile station (ru/ru-2, holding a valid key) floods posts, asks for syncs it never
reads, and sends garbage frames and unauthenticated connections, while us/us-1 and
ru/ru-1 exchange FLASH messages. Prints a Markdown report; nothing here fails on a slow
machine (the assertions are in tests/test_relay_limits.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hotline import body, frames
from hotline.envelope import ZERO_HASH, envelope_hash, seal
from hotline.home import load_roster, load_station
from tests.netutil import PASSPHRASE, Cluster, wait_for

HOSTILE = "ru/ru-2"
CHANNEL = "us-ru"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def rss_kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x.split()[1] for x in status.splitlines() if x.startswith(field)))


# --- the hostile station ------------------------------------------------------------------------


class Hostile:
    """ru/ru-2's attacks, each in a loop that reconnects whenever the relay drops it."""

    def __init__(self, c: Cluster) -> None:
        self.url = c.net.relay_url
        self.base = f"http://127.0.0.1:{c.net.relay_port}"
        roster = load_roster(c.net.relay_dir / "roster.note")
        self.roster_hash = hashlib.sha256(roster.encode()).digest()
        self.key, self.cert = load_station(c.net.stations[HOSTILE], PASSPHRASE, roster)
        self.certs = [load_station(d, PASSPHRASE, roster)[1] for d in c.net.stations.values()]
        self.stop = asyncio.Event()
        self.counts: Counter[str] = Counter()

    def envelopes(self, n: int, size: int) -> list[bytes]:
        text = body.encode(body.text("x" * size, "ru"))
        prev, out = ZERO_HASH, []
        for seq in range(1, n + 1):
            raw = seal(
                text,
                sender=self.key,
                channel=CHANNEL,
                seq=seq,
                prev=prev,
                recipients=self.certs,
                created_ms=int(time.time() * 1000),
            )
            out.append(raw)
            prev = envelope_hash(raw)
        return out

    async def login(self) -> Any:
        ws = await websockets.connect(self.url, max_size=None, max_queue=1, compression=None)
        challenge = frames.decode_relay_frame(await ws.recv())
        assert isinstance(challenge, frames.Challenge), challenge
        message = frames.auth_message(challenge.nonce, HOSTILE, self.roster_hash)
        signature = self.key.signing.sign(message)
        await ws.send(frames.encode_frame(frames.Hello(HOSTILE, self.cert.encode(), signature)))
        welcome = json.loads(await ws.recv())
        if welcome["op"] != "welcome":
            await ws.close()
            raise ConnectionError(welcome)
        return ws

    async def fill(self, envelopes: list[bytes]) -> None:
        """Large entries first, so that each sync answer is a full frame."""
        ws = await self.login()
        for seq, raw in enumerate(envelopes, 1):
            await ws.send(frames.encode_frame(frames.Post(raw, seq)))
            while json.loads(await ws.recv()).get("id") != seq:
                pass
        await ws.close()

    async def forever(self, name: str, attack: Any) -> None:
        while not self.stop.is_set():
            try:
                await attack()
            except (OSError, ConnectionError, websockets.WebSocketException, httpx.HTTPError):
                self.counts[f"{name} dropped"] += 1
                await asyncio.sleep(0.2)

    async def flood(self, logged: bytes) -> None:
        """Posts as fast as the socket takes them: an envelope already logged, and a
        copy with a broken signature; answers are read (or this would be a stall)."""
        broken = bytearray(logged)
        broken[-1] ^= 1
        posts = [frames.encode_frame(frames.Post(raw)) for raw in (logged, bytes(broken))]
        ws = await self.login()

        async def drain() -> None:
            async for _ in ws:
                self.counts["flood answers"] += 1

        reader = asyncio.create_task(drain())
        try:
            i = 0
            while not self.stop.is_set() and not reader.done():
                await ws.send(posts[i % 2])
                self.counts["flood posts"] += 1
                i += 1
                if i % 64 == 0:
                    await asyncio.sleep(0)
        finally:
            reader.cancel()
            await ws.close()

    async def stall(self) -> None:
        """Syncs from 0 (full frames) that are never read."""
        ws = await self.login()
        try:
            i = 0
            while not self.stop.is_set():
                await ws.send(frames.encode_frame(frames.Sync(CHANNEL, 0, i)))
                self.counts["stalled syncs"] += 1
                i += 1
                await asyncio.sleep(0.002)
        finally:
            ws.transport.abort()

    async def garbage(self) -> None:
        """Junk before and after authenticating, and oversized frames."""
        junk = ["{not json", json.dumps({"op": "nonsense"}), "x" * (frames.MAX_FRAME + 10)]
        async with websockets.connect(self.url, max_size=None) as pre:
            await pre.recv()
            await pre.send(junk[self.counts["garbage"] % 3])
            self.counts["garbage"] += 1
            with contextlib.suppress(websockets.ConnectionClosed):
                await pre.recv()
        ws = await self.login()
        try:
            for j in junk * 20:
                await ws.send(j)
                self.counts["garbage"] += 1
            await asyncio.sleep(0.05)
        finally:
            await ws.close()

    async def http(self) -> None:
        async with httpx.AsyncClient() as client:
            while not self.stop.is_set():
                r = await client.get(f"{self.base}/channels/{CHANNEL}/checkpoint")
                self.counts[f"http {r.status_code}"] += 1


def attack_in_thread(
    h: Hostile, logged: bytes
) -> tuple[threading.Thread, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()

    async def main() -> None:
        h.stop = asyncio.Event()
        await asyncio.gather(
            h.forever("flood", lambda: h.flood(logged)),
            h.forever("stall", h.stall),
            h.forever("garbage", h.garbage),
            h.forever("http", h.http),
        )

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    return thread, loop


# --- honest FLASH latency ------------------------------------------------------------------


def flash_latency(c: Cluster, label: str, n: int, pace: float) -> list[float]:
    """us -> ru and ru -> us, alternating; latency from seal to verified at the receiver."""
    pairs = [("us/us-1", "ru/ru-1"), ("ru/ru-1", "us/us-1")]
    for i in range(n):
        sender, _ = pairs[i % 2]
        r = c.api(sender).post(
            "/api/send", json={"channel": CHANNEL, "text": f"{label} {i}", "precedence": "FLASH"}
        )
        assert r.status_code == 202, r.text
        time.sleep(pace)

    def received() -> list[float]:
        out = []
        for sender, receiver in pairs:
            with c.station_store(receiver) as store:
                for m in store.messages(CHANNEL):
                    text = json.loads(m.body).get("text", "")
                    if m.sender == sender and text.startswith(f"{label} "):
                        out.append(float(m.received_ms - m.created_ms))
        return out

    wait_for(lambda: len(received()) == n, timeout=300, what=f"{label} delivered")
    return received()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200, help="FLASH messages per phase")
    parser.add_argument("--pace", type=float, default=0.05, help="seconds between sends")
    args = parser.parse_args()
    print(
        f"# hostile-station benchmark, {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        c = Cluster(
            Path(tmp),
            stations={"us": ["us-1"], "ru": ["ru-1", "ru-2"]},
            channels={CHANNEL: {"members": ["us", "ru"]}},
        )
        c.start_relay()
        for ident in ("us/us-1", "ru/ru-1"):
            c.start_station(ident)
        c.wait_ready(["us/us-1", "ru/ru-1"])
        try:
            h = Hostile(c)
            filler = h.envelopes(40, body.MAX_TEXT - 100)
            asyncio.run(h.fill(filler))
            wait_for(lambda: len(c.inbox("us/us-1")) == 40, timeout=120, what="filler")
            assert c.relay.p is not None
            pid = c.relay.p.pid
            flash_latency(c, "warm-up", 10, args.pace)
            rss_quiet = rss_kib(pid, "VmRSS")
            quiet = flash_latency(c, "quiet", args.messages, args.pace)
            thread, loop = attack_in_thread(h, filler[0])
            time.sleep(2.0)  # let every attack run
            rss_attack_start = rss_kib(pid, "VmRSS")
            hostile = flash_latency(c, "hostile", args.messages, args.pace)
            loop.call_soon_threadsafe(h.stop.set)
            thread.join(30)
            peak = rss_kib(pid, "VmHWM")
            health = httpx.get(f"http://127.0.0.1:{c.net.relay_port}/health").json()
        finally:
            c.close()
    q50, q99, h50, h99 = pct(quiet, 50), pct(quiet, 99), pct(hostile, 50), pct(hostile, 99)
    print("| FLASH us<->ru, ms | p50 | p99 |\n|---|---:|---:|")
    print(f"| quiet ({len(quiet)} messages) | {q50:.0f} | {q99:.0f} |")
    print(f"| beside the hostile station ({len(hostile)}) | {h50:.0f} | {h99:.0f} |")
    print(f"| ratio | {h50 / q50:.2f}x | {h99 / q99:.2f}x |\n")
    print(
        f"relay RSS: {rss_quiet / 1024:.0f} MiB quiet, {rss_attack_start / 1024:.0f} MiB "
        f"2 s into the attack, peak {peak / 1024:.0f} MiB over the whole run; "
        f"stations online at the end: {', '.join(health['stations_online'])}\n"
    )
    print("hostile activity: " + ", ".join(f"{k} {v:,}" for k, v in sorted(h.counts.items())))


if __name__ == "__main__":
    main()
