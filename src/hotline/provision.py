"""Lay out a whole network in one directory: parties, relay, stations, signed roster.

Used by `hotline demo` and by the tests; a real deployment does the same steps
with the CLI, each party on its own machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .home import party_init, relay_init, station_init
from .keys import PartyKey
from .roster import roster_text, sign_roster

LANG = {"us": "en", "ru": "ru", "ua": "uk", "ae": "en"}
DEMO_CHANNELS: dict[str, dict[str, Any]] = {
    "us-ru": {"members": ["us", "ru"]},
    "us-ru-ua": {"members": ["us", "ru", "ua"]},
}


@dataclass
class Network:
    root: Path
    relay_dir: Path
    relay_port: int
    parties: dict[str, PartyKey]
    stations: dict[str, Path] = field(default_factory=dict)  # "us/us-1" -> directory
    api_ports: dict[str, int] = field(default_factory=dict)
    # Independent relays after the first (``extra_relays``): name -> (directory, port).
    more_relays: dict[str, tuple[Path, int]] = field(default_factory=dict)

    @property
    def relay_url(self) -> str:
        return f"ws://127.0.0.1:{self.relay_port}/ws"


def provision(
    root: Path,
    passphrase: str,
    *,
    relay_port: int = 8700,
    stations: dict[str, list[str]] | None = None,
    channels: dict[str, dict[str, Any]] | None = None,
    parties: tuple[str, ...] = ("us", "ru", "ua", "ae"),
    api_ports: dict[str, int] | None = None,
    kdf: dict[str, int] | None = None,
    roster_name: str = "abu-dhabi",
    post_quantum: bool = True,
    extra_relays: dict[str, int] | None = None,
    more_ae_ports: tuple[int, ...] = (),
) -> Network:
    """Create every key, certify stations, and have every party sign the roster.

    ``post_quantum=False`` makes a network as it was before envelope version 2 (Ed25519
    and X25519 keys only): for the benchmarks that compare the two. ``extra_relays``
    (relay name -> port, e.g. ``{"relay.ch": 8800}``): independent relays beside
    ``relay.ae``, each with its own key and directory (``relay-ch/``), all named in the
    roster; every station is given each relay's URL (``NAME=URL``). ``more_ae_ports``: further
    processes of ``relay.ae`` (one PostgreSQL database behind them all), whose URLs every
    station is given after the first, to move to when one fails."""
    stations = (
        stations if stations is not None else {"us": ["us-1"], "ru": ["ru-1"], "ua": ["ua-1"]}
    )
    channels = channels if channels is not None else DEMO_CHANNELS
    root.mkdir(parents=True, exist_ok=True)
    keys = {p: party_init(root / "parties" / p, p, passphrase, kdf, post_quantum) for p in parties}
    relay_dir = root / "relay"
    relay_key = relay_init(relay_dir, "relay.ae", passphrase, port=relay_port, kdf=kdf)
    relay_keys = [relay_key.verifier.encode()]
    more: dict[str, tuple[Path, int]] = {}
    for name, port in (extra_relays or {}).items():
        rdir = root / ("relay-" + name.removeprefix("relay."))
        relay_keys.append(relay_init(rdir, name, passphrase, port=port, kdf=kdf).verifier.encode())
        more[name] = (rdir, port)
    text = roster_text(
        roster_name,
        {p: {**k.public_keys(), "language": LANG.get(p, "en")} for p, k in keys.items()},
        channels,
        relay_keys if len(relay_keys) > 1 else relay_keys[0],
    )
    note = sign_roster(text, keys[parties[0]])
    for p in parties[1:]:
        note = sign_roster(note, keys[p])
    roster_bytes = note.encode()
    (relay_dir / "roster.note").write_bytes(roster_bytes)
    for rdir, _ in more.values():
        (rdir / "roster.note").write_bytes(roster_bytes)
    net = Network(root, relay_dir, relay_port, keys, more_relays=more)
    urls = [
        net.relay_url,
        *(f"ws://127.0.0.1:{p}/ws" for p in more_ae_ports),
        *(f"{n}=ws://127.0.0.1:{p}/ws" for n, (_, p) in more.items()),
    ]
    port = relay_port + 1
    for party, names in stations.items():
        for name in names:
            ident = f"{party}/{name}"
            sdir = root / "stations" / name
            api_port = (api_ports or {}).get(ident, port)
            port = max(port, api_port) + 1
            station_init(
                sdir,
                keys[party],
                name,
                passphrase,
                relay=urls,
                api_port=api_port,
                language=LANG.get(party, "en"),
                kdf=kdf,
                post_quantum=post_quantum,
            )
            (sdir / "roster.note").write_bytes(roster_bytes)
            net.stations[ident] = sdir
            net.api_ports[ident] = api_port
    return net
