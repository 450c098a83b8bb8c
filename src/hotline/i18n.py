"""Catalogs for English, Russian and Ukrainian (gettext .po files, read with Babel),
and locale-aware numbers and times, always with UTC shown."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from babel.dates import format_datetime
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LANGUAGES = ("en", "ru", "uk")
LOCALE_DIR = Path(__file__).parent / "locale"


@cache
def catalog(lang: str) -> Catalog:
    if lang not in LANGUAGES:
        raise KeyError(f"no catalog for language {lang!r}")
    with open(LOCALE_DIR / lang / "LC_MESSAGES" / "hotline.po", "rb") as f:
        return read_po(f, locale=lang)


def keys(lang: str) -> set[str]:
    return {str(m.id) for m in catalog(lang) if m.id and m.string}


def t(lang: str, key: str, **params: object) -> str:
    """The catalog text for ``key`` in ``lang`` (English, then the key, if missing)."""
    for candidate in (lang, "en"):
        message = catalog(candidate if candidate in LANGUAGES else "en").get(key)
        if message is not None and message.string:
            text = str(message.string)
            return text.format(**params) if params else text
    return key


def number(value: float | int, lang: str) -> str:
    return str(format_decimal(value, locale=lang))


def when(ms_or_iso: int | str | datetime, lang: str) -> str:
    """A UTC time in the reader's locale, with "UTC" written out."""
    if isinstance(ms_or_iso, int):
        moment = datetime.fromtimestamp(ms_or_iso / 1000, UTC)
    elif isinstance(ms_or_iso, str):
        moment = datetime.fromisoformat(ms_or_iso.replace("Z", "+00:00"))
    else:
        moment = ms_or_iso
    return str(format_datetime(moment, "d MMMM y, HH:mm:ss", tzinfo=UTC, locale=lang)) + " UTC"
