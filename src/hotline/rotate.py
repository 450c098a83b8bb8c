"""``hotline station rotate``: a station's new key, logged, switched to; the old one
retired only once nothing signed with it waits to be logged.

The steps, run beside a serving station by someone holding the party root:

1. make a new key for the same station and certify it with the party root;
2. register it at every relay of the roster: a session in which the new key answers the
   relay's challenge, so the relay logs its certificate (a key event) in every channel
   of the party before anything is signed with it; a relay not answering logs it when
   the station next links to it (its hello carries the certificate);
3. install it in the station's directory (the old key moves to ``retired/``: it still
   opens what was sealed to it) and tell the running station to switch to it;
4. wait until the station's outbox holds nothing queued: every envelope signed with the
   old key has been logged, so none is refused once the old key is revoked;
5. revoke the old key (``replaced_by`` the new one): the station owes the revocation to
   every relay, durably (its store: a restart keeps it), and each link hands it over
   once what the old key signed is logged there; logged, it takes effect at its
   position, after everything the old key signed. The command waits a while for every
   relay to log it and reports, per relay, what is logged and what is still pending (a
   relay down now gets it when the station next links to it).
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
from .home import (
    install_station_key,
    load_roster,
    load_station,
    station_config,
    urls_per_relay,
)
from .keys import PartyKey, Revocation, StationCertificate, StationKey
from .roster import Roster
from .station.client import StationClient


@dataclass(frozen=True)
class Rotation:
    old: StationCertificate
    new: StationCertificate
    revocation: Revocation
    pending: dict[str, list[str]]  # per relay: the key events it has not logged yet


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


def rotate_station(
    directory: Path,
    party: PartyKey,
    passphrase: str,
    *,
    valid_days: int = 365,
    drain_timeout: float = 300.0,
    confirm_timeout: float = 30.0,
    kdf: dict[str, int] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Rotation:
    """Rotate the key of the station served from ``directory`` (see the module doc)."""
    cfg = station_config(directory)
    roster = load_roster(directory / "roster.note")
    relays = roster.relay_names()
    per_relay = urls_per_relay(list(cfg.relays), relays[0])
    old_key, old_cert = load_station(directory, passphrase, roster)
    with StationClient.for_dir(directory) as station:
        station.status()  # serving (Unavailable if not): it must switch and drain
    if party.party != old_key.party:
        raise HotlineError(f"the {party.party} root cannot certify {old_key.ident}")
    key = StationKey.generate(old_key.party, old_key.station)
    now = int(time.time())
    cert = party.certify(key, now - 300, now + valid_days * 86400)
    for relay in relays:
        try:
            with any_relay_session(directory, tuple(per_relay.get(relay, [])), roster, key, cert):
                pass
        except Unavailable as exc:
            say(f"{relay}: certificate pending ({exc}); logged when the station links to it")
            continue
        say(f"{relay}: new key of {key.ident} registered (its certificate is logged)")
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
    with StationClient.for_dir(directory) as station:
        station.submit_key_event("revocation", revocation.encode())
        say("the old key is revoked: the station hands the revocation to every relay")
        owed = {cert.encode(): "certificate", revocation.encode(): "revocation"}
        pending = _wait_logged(station, owed, relays, confirm_timeout)
    for relay in relays:
        if "revocation" not in pending[relay]:
            say(f"{relay}: revocation logged (after everything the old key signed)")
        else:
            why = pending[relay]["revocation"]
            say(
                f"{relay}: revocation pending ({why}); the station keeps it and hands it "
                "over when it next links to this relay: until then the old key is usable there"
            )
    return Rotation(
        old_cert, cert, revocation, {r: sorted(pending[r]) for r in relays if pending[r]}
    )


def _wait_logged(
    station: StationClient, owed: dict[bytes, str], relays: list[str], timeout: float
) -> dict[str, dict[str, str]]:
    """Wait up to ``timeout`` for every relay to log the key events ``owed`` (data to
    kind); per relay, the kinds still pending and why (the relay's refusal, or that the
    station is not linked to it)."""
    digests = {hashlib.sha256(data).hexdigest(): kind for data, kind in owed.items()}
    deadline = time.monotonic() + timeout
    while True:
        pending: dict[str, dict[str, str]] = {r: {} for r in relays}
        for event in station.key_events()["events"]:
            kind = digests.get(event["hash"])
            if kind is not None and event["pending"] and event["relay"] in pending:
                pending[event["relay"]][kind] = event["error"] or "not logged yet"
        if not any(pending.values()) or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    links = station.status().get("relays") or {}
    for relay, kinds in pending.items():
        link = links.get(relay) or {}
        if kinds and link and not link.get("connected"):
            error = link.get("last_error") or "no link"
            for kind in kinds:
                kinds[kind] = f"the station is not linked to it: {error}"
    return pending
