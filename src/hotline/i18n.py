"""Catalogs for English, Russian and Ukrainian (gettext .po files, read with Babel),
and locale-aware numbers and times, always with UTC shown."""

from __future__ import annotations

from dataclasses import dataclass
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


def degrees(value: float, lang: str) -> str:
    """A coordinate in the reader's decimal format, to 5 places (about a metre), which
    is as exact as coordinates on the wire are written; ``number`` would stop at 3."""
    return str(format_decimal(value, format="0.#####", locale=lang))


# A time outside these bounds comes from a wrong clock or a hostile sender: it is shown,
# flagged, never allowed to break a page (datetime stops at year 9999).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Moment:
    """A time as text for a reader, and whether it lies in the plausible range."""

    text: str
    in_range: bool


def moment(value: int | str | datetime, lang: str) -> Moment:
    """A UTC time in the reader's locale, or its raw value if it cannot be a date."""
    try:
        if isinstance(value, int):
            at = datetime.fromtimestamp(value / 1000, UTC)
        elif isinstance(value, str):
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            at = value
        # A time without a zone is UTC, as everywhere in hotline.
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        text = str(format_datetime(at, "d MMMM y, HH:mm:ss", tzinfo=UTC, locale=lang)) + " UTC"
    except (OverflowError, ValueError, OSError):
        return Moment(f"{value} ms" if isinstance(value, int) else str(value), False)
    return Moment(text, EARLIEST <= at < LATEST)


def when(value: int | str | datetime, lang: str) -> str:
    """A UTC time in the reader's locale, with "UTC" written out; flagged if implausible."""
    m = moment(value, lang)
    return m.text if m.in_range else f"{m.text} [{t(lang, 'ui.time_out_of_range')}]"
