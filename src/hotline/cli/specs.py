"""What an operator types on the command line, read into values the library takes.

``--party NAME[:LANG]=PUBKEY_OR_FILE``, ``--channel NAME=MEMBER,...[:FLASH=600,...][:link=60]``
and form fields in a TOML or JSON file. Each reader raises ``Malformed`` naming the
expected form, so a mistyped option says how to write it.
"""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import Malformed
from ..notes import parse_mldsa_verifier_key, parse_verifier_key
from ..roster import LANGUAGES, PRECEDENCES

PARTY_FORM = "NAME[:LANG]=PUBKEY_OR_FILE"
CHANNEL_FORM = "NAME=MEMBER,MEMBER[:FLASH=600,...][:link=60]"


def verifier_key(value: str) -> str:
    """A public note key given inline, or the file (e.g. party.pub) that holds one."""
    path = Path(value)
    text = path.read_text().strip() if value and path.is_file() else value
    parse_verifier_key(text)
    return text


def party_keys(value: str) -> dict[str, Any]:
    """A party's public root keys given inline or as the file (party.pub) that holds
    them: ``root`` (Ed25519), then for a party made since issue 16 ``pq_root``
    (ML-DSA-65), separated by white space (party.pub has one per line)."""
    path = Path(value)
    text = path.read_text() if value and path.is_file() else value
    keys = text.split()
    if not 1 <= len(keys) <= 2:
        raise Malformed("a party key is one or two keys (Ed25519, then ML-DSA-65)", field="root")
    out: dict[str, Any] = {"root": parse_verifier_key(keys[0])}
    if len(keys) == 2:
        out["pq_root"] = parse_mldsa_verifier_key(keys[1])
    return out


def party_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``us:en=us/party.pub`` -> ("us", {"root": <key>, "language": "en"})."""
    who, eq, key_part = spec.partition("=")
    name, _, lang = who.partition(":")
    if not eq or not name or not key_part:
        raise Malformed(f"--party {spec!r}: write it as {PARTY_FORM}", field="party")
    if lang and lang not in LANGUAGES:
        raise Malformed(f"language of {name} must be one of {', '.join(LANGUAGES)}")
    try:
        entry = {k: v.encode() for k, v in party_keys(key_part).items()}
    except Malformed as exc:
        raise Malformed(
            f"--party {spec!r}: {key_part!r} is neither a key file nor a public key "
            f"(write it as {PARTY_FORM}): {exc.message}",
            field="party",
        ) from exc
    return name, {**entry, "language": lang or "en"}


def channel_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``us-ru=us,ru:FLASH=300:link=60`` -> ("us-ru", {"members": [...], ...})."""
    name, eq, rest = spec.partition("=")
    members, *opts = rest.split(":")
    if not eq or not name or not members:
        raise Malformed(f"--channel {spec!r}: write it as {CHANNEL_FORM}", field="channel")
    entry: dict[str, Any] = {"members": members.split(",")}
    for opt in opts:
        for pair in opt.split(","):
            key, _, value = pair.partition("=")
            if not value.isdigit():
                raise Malformed(f"--channel {spec!r}: {key} needs whole seconds", field="channel")
            if key.upper() in PRECEDENCES:
                entry.setdefault("deadlines", {})[key.upper()] = int(value)
            elif key == "link":
                entry["link_test_seconds"] = int(value)
            else:
                raise Malformed(f"unknown channel option {key!r}", field="channel")
    return name, entry


def read_fields(path: Path) -> dict[str, Any]:
    """A form's fields (or a whole body) from a TOML or JSON file."""
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise Malformed(f"{path} is not valid {path.suffix[1:] or 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise Malformed(f"{path} must hold a table/object of fields")
    fields: dict[str, Any] = _times_to_text(data)
    return fields


def _times_to_text(value: Any) -> Any:
    """TOML reads 2026-11-25T06:00:00Z as a datetime; forms carry it as text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        return {k: _times_to_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_times_to_text(v) for v in value]
    return value
