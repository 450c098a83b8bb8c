"""Directories of a party, a station and a relay: what files they hold.

    party/    party.key (encrypted root key), party.pub (note verifier key)
    relay/    relay.key, relay.pub, relay.toml, roster.note, relay.db
    station/  station.key, station.cert, station.toml, roster.note, station.db, api-token
              (and, to serve the console off loopback, the api_tls_cert/api_tls_key files)

Settings come from the TOML file, then ``HOTLINE_*`` environment variables.
Passphrases come from ``HOTLINE_PASSPHRASE`` (or the variable named by
``--passphrase-env``) or a prompt; key material may instead come whole from
``HOTLINE_KEY`` (base64 of the key JSON) for unattended machines.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import Malformed, WrongPassphrase
from .keys import (
    PartyKey,
    StationCertificate,
    StationKey,
    load_key,
    parse_certificate,
    seal_key_file,
)
from .notes import NoteSigner, parse_note
from .roster import Roster, open_roster

KEY_ENV = "HOTLINE_KEY"


def write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def toml_line(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{key} = {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"{key} = {value}"
    if isinstance(value, list):
        return f"{key} = [" + ", ".join(toml_line("", v)[3:] for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'{key} = "{escaped}"'


def write_toml(path: Path, values: dict[str, Any]) -> None:
    path.write_text("".join(toml_line(k, v) + "\n" for k, v in values.items()))


def read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise Malformed(f"{path} does not exist; run the init command first", field="config")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise Malformed(f"{path}: {exc}", field="config") from exc


def passphrase_from_env(env_name: str = "HOTLINE_PASSPHRASE") -> str | None:
    return os.environ.get(env_name) or None


# --- party -------------------------------------------------------------------------


def party_init(
    directory: Path,
    party: str,
    passphrase: str,
    kdf: dict[str, int] | None = None,
    post_quantum: bool = True,
) -> PartyKey:
    """A party's root keys: Ed25519 and ML-DSA-65 (``post_quantum=False``, Ed25519 alone,
    only to reproduce a network from before version 2, as the benchmarks do)."""
    if (directory / "party.key").exists():
        raise Malformed(f"{directory} already holds a party key; not overwriting", field="dir")
    key = PartyKey.generate(party, pq=post_quantum)
    write_private(directory / "party.key", seal_key_file(key.secret_material(), passphrase, kdf))
    # The Ed25519 root, then (line 2) the ML-DSA-65 root: `roster create --party` reads both.
    (directory / "party.pub").write_text("".join(k + "\n" for k in key.public_keys().values()))
    return key


def load_party(directory: Path, passphrase: str | None) -> PartyKey:
    key = load_key(directory / "party.key", passphrase, KEY_ENV)
    if not isinstance(key, PartyKey):
        raise Malformed(f"{directory / 'party.key'} is not a party key", field="key")
    return key


# --- relay ---------------------------------------------------------------------------


def relay_init(
    directory: Path,
    name: str,
    passphrase: str,
    host: str = "127.0.0.1",
    port: int = 8700,
    kdf: dict[str, int] | None = None,
) -> NoteSigner:
    if (directory / "relay.key").exists():
        raise Malformed(f"{directory} already holds a relay key; not overwriting", field="dir")
    # A note signer with the same file format; checkpoints stay Ed25519 (PROTOCOL.md §9).
    party = PartyKey.generate(name, pq=False)
    write_private(directory / "relay.key", seal_key_file(party.secret_material(), passphrase, kdf))
    (directory / "relay.pub").write_text(party.verifier.encode() + "\n")
    write_toml(directory / "relay.toml", {"name": name, "host": host, "port": port})
    return party.signer


def load_relay_key(directory: Path, passphrase: str | None) -> NoteSigner:
    key = load_key(directory / "relay.key", passphrase, KEY_ENV)
    if not isinstance(key, PartyKey):
        raise Malformed("relay.key is not a signing key", field="key")
    return key.signer


def load_roster(path: Path) -> Roster:
    if not path.exists():
        raise Malformed(f"no roster at {path}", field="roster")
    return open_roster(path.read_bytes())


# --- station -------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_relay_url(url: str, allow_plain: bool = False) -> str:
    """A relay URL a station may use: ``wss://``, or ``ws://`` only to loopback.

    ``allow_plain`` lets ``ws://`` reach a relay served with ``--allow-plain`` on a
    network the operators trust. Raises Malformed naming the field ``relay``.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError as exc:
        raise Malformed(f"relay URL {url!r}: {exc}", field="relay") from exc
    if parts.scheme not in ("ws", "wss") or not host:
        raise Malformed(f"relay URL {url!r} must be wss://host:port/ws", field="relay")
    if parts.scheme == "ws" and not is_loopback(host) and not allow_plain:
        raise Malformed(
            f"refusing plain ws:// to {host}: use wss:// (TLS) off loopback "
            "(or allow_plain_relay = true in station.toml on a network you trust)",
            field="relay",
        )
    return url


@dataclass(frozen=True)
class StationConfig:
    directory: Path
    party: str
    station: str
    relays: tuple[str, ...]  # the relay's URLs, tried in turn (processes of one relay)
    api_host: str
    api_port: int
    language: str
    api_tls_cert: Path | None = None
    api_tls_key: Path | None = None
    allow_plain_relay: bool = False

    @property
    def relay(self) -> str:
        """The first relay URL."""
        return self.relays[0]

    @property
    def api_url(self) -> str:
        scheme = "https" if self.api_tls_cert else "http"
        return f"{scheme}://{self.api_host}:{self.api_port}"

    def token(self) -> str:
        return (self.directory / "api-token").read_text().strip()


def station_init(
    directory: Path,
    party_key: PartyKey,
    station: str,
    passphrase: str,
    *,
    relay: str | Sequence[str] = "ws://127.0.0.1:8700/ws",
    api_port: int = 8711,
    language: str = "en",
    valid_days: int = 365,
    kdf: dict[str, int] | None = None,
    post_quantum: bool = True,
) -> StationCertificate:
    if (directory / "station.key").exists():
        raise Malformed(f"{directory} already holds a station key; not overwriting", field="dir")
    key = StationKey.generate(party_key.party, station, pq=post_quantum)
    now = int(time.time())
    cert = party_key.certify(key, now - 300, now + valid_days * 86400)
    write_private(directory / "station.key", seal_key_file(key.secret_material(), passphrase, kdf))
    (directory / "station.cert").write_bytes(cert.encode())
    write_private(directory / "api-token", (secrets.token_urlsafe(32) + "\n").encode())
    write_toml(
        directory / "station.toml",
        {
            "party": party_key.party,
            "station": station,
            "relay": urls[0] if len(urls := split_urls(relay)) == 1 else urls,
            "api_host": "127.0.0.1",
            "api_port": api_port,
            "language": language,
        },
    )
    return cert


def station_config(directory: Path) -> StationConfig:
    raw = read_toml(directory / "station.toml")
    env = os.environ

    def path(key: str) -> Path | None:
        value = env.get("HOTLINE_" + key.upper(), raw.get(key))
        return directory / str(value) if value else None  # relative to the directory

    try:
        cfg = StationConfig(
            directory=directory,
            party=str(raw["party"]),
            station=str(raw["station"]),
            relays=_relays(env.get("HOTLINE_RELAY", raw.get("relay", "ws://127.0.0.1:8700/ws"))),
            api_host=env.get("HOTLINE_API_HOST", str(raw.get("api_host", "127.0.0.1"))),
            api_port=int(env.get("HOTLINE_API_PORT", raw.get("api_port", 8711))),
            language=str(raw.get("language", "en")),
            api_tls_cert=path("api_tls_cert"),
            api_tls_key=path("api_tls_key"),
            allow_plain_relay=env.get(
                "HOTLINE_ALLOW_PLAIN_RELAY", str(raw.get("allow_plain_relay", False))
            ).lower()
            in ("1", "true", "yes"),
        )
    except (KeyError, ValueError) as exc:
        raise Malformed(f"station.toml: {exc}", field="config") from exc
    if (cfg.api_tls_cert is None) != (cfg.api_tls_key is None):
        raise Malformed("station.toml: give both api_tls_cert and api_tls_key", field="config")
    return cfg


def split_urls(values: str | Sequence[str]) -> list[str]:
    """Relay URLs from a setting: a string with commas, or a list of such strings."""
    items = [values] if isinstance(values, str) else list(values)
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def _relays(value: object) -> tuple[str, ...]:
    """``relay``: one URL, URLs separated by commas, or a list of them."""
    if not isinstance(value, (str, list)):
        raise Malformed("station.toml: relay must be a URL or a list of URLs", field="relay")
    urls = split_urls(value if isinstance(value, str) else [str(v) for v in value])
    if not urls:
        raise Malformed("station.toml: relay names no URL", field="relay")
    return tuple(urls)


def load_station(
    directory: Path, passphrase: str | None, roster: Roster
) -> tuple[StationKey, StationCertificate]:
    key = load_key(directory / "station.key", passphrase, KEY_ENV)
    if not isinstance(key, StationKey):
        raise Malformed("station.key is not a station key", field="key")
    root = roster.parties.get(key.party)
    if root is None:
        raise Malformed(f"party {key.party} is not in the roster", field="party")
    cert = parse_certificate((directory / "station.cert").read_bytes(), root.root)
    pq = key.pq
    if (
        cert.signing != key.signing_public
        or cert.encryption != key.encryption_public
        or (cert.version == 2 and (pq is None or cert.kem != pq.kem_public))
        or (cert.version == 2 and pq is not None and cert.pq_signing != pq.signing_public)
    ):
        raise WrongPassphrase("station.cert does not belong to station.key")
    return key, cert


RETIRED = "retired"  # a rotated station's old keys, kept to open what was sealed to them


def install_station_key(
    directory: Path,
    key: StationKey,
    cert: StationCertificate,
    passphrase: str,
    kdf: dict[str, int] | None = None,
) -> Path:
    """Make ``key`` the station's key (``hotline station rotate``): the one before it
    moves to ``retired/`` (still needed to open envelopes sealed to it). Returns where."""
    if os.environ.get(KEY_ENV):
        raise Malformed(
            f"the station key comes from {KEY_ENV}: a rotation writes a key file; unset it",
            field="key",
        )
    old = parse_note((directory / "station.cert").read_bytes())
    kept = directory / RETIRED
    kept.mkdir(mode=0o700, exist_ok=True)
    name = hashlib.sha256(old.encode()).hexdigest()[:16]
    (directory / "station.key").replace(kept / f"{name}.key")
    (directory / "station.cert").replace(kept / f"{name}.cert")
    write_private(directory / "station.key", seal_key_file(key.secret_material(), passphrase, kdf))
    (directory / "station.cert").write_bytes(cert.encode())
    return kept / f"{name}.key"


def load_retired(directory: Path, passphrase: str | None) -> list[StationKey]:
    """The keys a station held before its rotations (to open what was sealed to them)."""
    keys = []
    for path in sorted((directory / RETIRED).glob("*.key")):
        key = load_key(path, passphrase)
        if isinstance(key, StationKey):
            keys.append(key)
    return keys
