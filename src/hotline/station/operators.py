"""Operator accounts and console sessions.

Passwords are hashed with Argon2id (memory-hard, per-password salt) and compared in
constant time; an unknown name costs the same work as a wrong password. Sign-in is
three steps so that the slow one (``verify``) can run off the database thread.
A session is a random token in an HttpOnly, SameSite=Strict cookie; the database
keeps only its SHA-256, with a CSRF token and an expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from ..errors import Malformed, NotAuthorized
from ..i18n import LANGUAGES
from ..keys import argon2id
from .store import Session, StationStore

__all__ = [
    "Credentials",
    "Session",
    "Verified",
    "add_operator",
    "credentials",
    "open_session",
    "session_for",
    "sign_in",
    "sign_out",
    "verify",
]

SESSION_SECONDS = 8 * 3600
PARAMS = {"iterations": 2, "lanes": 1, "memory_kib": 32 * 1024}


def _encoded(params: dict[str, int], salt: bytes, digest: bytes) -> str:
    p = params
    return (
        f"argon2id${p['iterations']}${p['lanes']}${p['memory_kib']}$"
        f"{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    )


def encode_password(password: str, params: dict[str, int] | None = None) -> str:
    p = params or PARAMS
    salt = secrets.token_bytes(16)
    return _encoded(p, salt, argon2id(password, salt, p))


# Checked for unknown names: the same Argon2id work as a real hash, and no password
# matches it (its digest would have to be all zeros).
DUMMY_HASH = _encoded(PARAMS, bytes(16), bytes(32))


def check_password(password: str, encoded: str) -> bool:
    try:
        name, it, lanes, mem, salt, digest = encoded.split("$")
        params = {"iterations": int(it), "lanes": int(lanes), "memory_kib": int(mem)}
        expected = base64.b64decode(digest)
        actual = argon2id(password, base64.b64decode(salt), params)
    except (ValueError, TypeError):
        return False
    return name == "argon2id" and hmac.compare_digest(actual, expected)


def add_operator(
    store: StationStore,
    name: str,
    password: str,
    language: str,
    now_ms: int,
    params: dict[str, int] | None = None,
) -> None:
    name = name.strip()
    if not name or len(name) > 64 or not name.isprintable():
        raise Malformed("an operator name is 1-64 printable characters", field="name")
    if len(password) < 12:
        raise Malformed("a password needs at least 12 characters", field="password")
    if language not in LANGUAGES:
        raise Malformed(f"language must be one of {', '.join(LANGUAGES)}", field="language")
    with store.transaction():
        if store.operator(name) is not None:
            raise Malformed(f"operator {name!r} exists already", field="name")
        store.add_operator(name, encode_password(password, params), language, now_ms)


@dataclass(frozen=True)
class Credentials:
    """What sign-in checks a password against: a real operator's hash, or the dummy."""

    name: str
    encoded: str = field(repr=False)
    known: bool  # False: no such (enabled) operator


@dataclass(frozen=True)
class Verified:
    """An operator whose password was just checked (only ``verify`` makes one)."""

    name: str


def credentials(store: StationStore, name: str) -> Credentials:
    """A quick lookup (database thread). Unknown names get a hash no password matches,
    with the same parameters, so checking it costs the same: timing tells no names."""
    op = store.operator(name)
    if op is None or op.disabled:
        return Credentials(name, DUMMY_HASH, known=False)
    return Credentials(name, op.password, known=True)


def verify(creds: Credentials, password: str) -> Verified:
    """The slow Argon2id check: run it off the database thread (a flood must not stall ingest)."""
    if not check_password(password, creds.encoded) or not creds.known:
        raise NotAuthorized("wrong operator name or password")
    return Verified(creds.name)


def open_session(store: StationStore, who: Verified, now_ms: int) -> tuple[str, Session]:
    """A new session for a verified operator (database thread)."""
    op = store.operator(who.name)
    if op is None or op.disabled:  # removed or disabled since the lookup
        raise NotAuthorized("wrong operator name or password")
    token = secrets.token_urlsafe(32)
    session = Session(
        who.name, op.language, secrets.token_urlsafe(24), now_ms + SESSION_SECONDS * 1000
    )
    with store.transaction():
        store.add_session(_token_hash(token), session, now_ms)
    return token, session


def sign_in(store: StationStore, name: str, password: str, now_ms: int) -> tuple[str, Session]:
    """All three steps in one thread (for tools and tests; the console splits them)."""
    return open_session(store, verify(credentials(store, name), password), now_ms)


def session_for(store: StationStore, token: str | None, now_ms: int) -> Session | None:
    if not token:
        return None
    session = store.session(_token_hash(token))
    if session is None or session.expires_ms < now_ms:
        return None
    return session


def sign_out(store: StationStore, token: str) -> None:
    with store.transaction():
        store.drop_session(_token_hash(token))


def _token_hash(token: str) -> bytes:
    # Only the hash is stored: a copy of the database does not sign anyone in.
    return hashlib.sha256(token.encode()).digest()
