"""``hotline station rotate``: a station's new key, logged, switched to; the old one
retired only once nothing signed with it waits to be logged.

The steps, run beside a serving station by someone holding the party root:

1. make a new key for the same station and certify it with the party root;
2. register it at the relay: a session in which the new key answers the relay's
   challenge, so the relay logs its certificate (a key event) in every channel of the
   party before anything is signed with it;
3. install it in the station's directory (the old key moves to ``retired/``: it still
   opens what was sealed to it) and tell the running station to switch to it;
4. wait until the station's outbox holds nothing queued: every envelope signed with the
   old key has been logged, so none is refused once the old key is revoked;
5. revoke the old key (``replaced_by`` the new one), through the relay: logged, it takes
   effect at its position, after everything the old key signed.
"""

from __future__ import annotations

import hashlib
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from . import frames
from .errors import HotlineError, Unavailable
from .home import install_station_key, load_roster, load_station, station_config
from .keys import PartyKey, Revocation, StationCertificate, StationKey
from .roster import Roster
from .station.client import StationClient


@dataclass(frozen=True)
class Rotation:
    old: StationCertificate
    new: StationCertificate
    revocation: Revocation


def relay_ssl(directory: Path, url: str) -> ssl.SSLContext | None:
    """The TLS context a station uses for its relay (``relay-ca.pem`` if it has one)."""
    if not url.startswith("wss://"):
        return None
    context = ssl.create_default_context()
    ca = directory / "relay-ca.pem"
    if ca.exists():
        context.load_verify_locations(str(ca))
    return context


@contextmanager
def relay_session(
    url: str,
    roster: Roster,
    key: StationKey,
    cert: StationCertificate,
    context: ssl.SSLContext | None,
    timeout: float = 30.0,
) -> Iterator[ClientConnection]:
    """A session at the relay in which ``key`` answers the challenge (so the relay
    registers and logs ``cert``); raises the relay's refusal as its error."""
    roster_hash = hashlib.sha256(roster.encode()).digest()
    try:
        ws = connect(url, ssl=context, open_timeout=timeout, close_timeout=5)
    except (OSError, WebSocketException, TimeoutError) as exc:
        raise Unavailable(f"relay at {url} is not answering ({exc})") from exc
    with ws:
        challenge = _next(ws, timeout)
        if not isinstance(challenge, frames.Challenge):
            raise HotlineError(f"the relay sent {challenge.op}, not a challenge")
        message = frames.auth_message(challenge.nonce, key.ident, roster_hash)
        hello = frames.Hello(key.ident, cert.encode(), key.signing.sign(message))
        ws.send(frames.encode_frame(hello))
        welcome = _next(ws, timeout)
        if not isinstance(welcome, frames.Welcome):
            raise HotlineError(f"the relay sent {welcome.op}, not a welcome")
        yield ws


@contextmanager
def any_relay_session(
    directory: Path,
    urls: tuple[str, ...],
    roster: Roster,
    key: StationKey,
    cert: StationCertificate,
) -> Iterator[ClientConnection]:
    """A session at the first of the relay's URLs that answers (its processes share one
    log, so any of them logs what the station says); Unavailable if none does."""
    errors: list[str] = []
    for url in urls:
        with ExitStack() as stack:
            try:
                ws = stack.enter_context(
                    relay_session(url, roster, key, cert, relay_ssl(directory, url))
                )
            except Unavailable as exc:
                errors.append(str(exc))
                continue
            yield ws
            return
    raise Unavailable("; ".join(errors) or "no relay URL is configured")


def _next(ws: ClientConnection, timeout: float) -> frames.RelayFrame:
    frame = frames.decode_relay_frame(str(ws.recv(timeout=timeout)))
    if isinstance(frame, frames.ErrorReply):
        raise frame.error()
    return frame


def send_revocation(ws: ClientConnection, revocation: Revocation, timeout: float = 30.0) -> None:
    """Hand the relay a revocation and wait for its ``ok`` (other frames are skipped)."""
    ws.send(frames.encode_frame(frames.Revoke(revocation.encode(), id="revoke")))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = _next(ws, max(0.1, deadline - time.monotonic()))
        if isinstance(frame, frames.Ok) and frame.id == "revoke":
            return
    raise Unavailable("the relay did not confirm the revocation in time")


def rotate_station(
    directory: Path,
    party: PartyKey,
    passphrase: str,
    *,
    valid_days: int = 365,
    drain_timeout: float = 300.0,
    kdf: dict[str, int] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Rotation:
    """Rotate the key of the station served from ``directory`` (see the module doc)."""
    cfg = station_config(directory)
    roster = load_roster(directory / "roster.note")
    old_key, old_cert = load_station(directory, passphrase, roster)
    with StationClient.for_dir(directory) as station:
        station.status()  # serving (Unavailable if not): it must switch and drain
    if party.party != old_key.party:
        raise HotlineError(f"the {party.party} root cannot certify {old_key.ident}")
    key = StationKey.generate(old_key.party, old_key.station)
    now = int(time.time())
    cert = party.certify(key, now - 300, now + valid_days * 86400)
    with any_relay_session(directory, cfg.relays, roster, key, cert):
        pass
    say(f"new key of {key.ident} registered at the relay (its certificate is logged)")
    install_station_key(directory, key, cert, passphrase, kdf)
    with StationClient.for_dir(directory) as station:
        station.rotate()
        say("the station signs with the new key; waiting for its outbox to drain")
        deadline = time.monotonic() + drain_timeout
        while station.status()["outbox"]["queued"]:
            if time.monotonic() > deadline:
                raise Unavailable(
                    "the outbox did not drain in time: the old key is NOT revoked yet; run "
                    "the revocation once the station's queue is empty"
                )
            time.sleep(0.2)
    revocation = party.revoke(old_cert, int(time.time()), "rotated", replaced_by=cert)
    with any_relay_session(directory, cfg.relays, roster, key, cert) as ws:
        send_revocation(ws, revocation)
    say("the old key is revoked (logged after everything it signed)")
    return Rotation(old_cert, cert, revocation)
