"""Operator accounts and console sessions.

Passwords are hashed with Argon2id (memory-hard, per-password salt) and compared in
constant time. A session is a random token in an HttpOnly, SameSite=Strict cookie;
the database keeps only its SHA-256, with a CSRF token and an expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from ..errors import Malformed, NotAuthorized
from ..i18n import LANGUAGES
from ..keys import argon2id
from .store import Session, StationStore

__all__ = ["Session", "add_operator", "session_for", "sign_in", "sign_out"]

SESSION_SECONDS = 8 * 3600
PARAMS = {"iterations": 2, "lanes": 1, "memory_kib": 32 * 1024}


def encode_password(password: str, params: dict[str, int] | None = None) -> str:
    p = params or PARAMS
    salt = secrets.token_bytes(16)
    digest = argon2id(password, salt, p)
    return (
        f"argon2id${p['iterations']}${p['lanes']}${p['memory_kib']}$"
        f"{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    )


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


def sign_in(store: StationStore, name: str, password: str, now_ms: int) -> tuple[str, Session]:
    op = store.operator(name)
    if op is not None and op.disabled:
        op = None
    # Hash even for unknown names, so timing does not tell which names exist.
    ok = check_password(password, op.password if op else encode_password("x" * 12))
    if op is None or not ok:
        raise NotAuthorized("wrong operator name or password")
    token = secrets.token_urlsafe(32)
    session = Session(name, op.language, secrets.token_urlsafe(24), now_ms + SESSION_SECONDS * 1000)
    with store.transaction():
        store.add_session(_token_hash(token), session, now_ms)
    return token, session


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
