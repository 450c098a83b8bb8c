"""Machine translation of free text: a plug-in interface, never part of the record.

The original is always shown and is authoritative. A translation is computed when a
reader looks at a message, marked as machine translation, and is never signed, sent
or logged. One implementation uses Argos Translate when the user has installed it
and its language packages; hotline itself never downloads models.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from typing import Any, Protocol


class Translator(Protocol):
    name: str

    def translate(self, text: str, source: str, target: str) -> str | None: ...


class ArgosTranslator:
    """Argos Translate with whatever language packages are installed locally."""

    name = "argos-translate"

    def __init__(self, module: Any) -> None:
        self._translate = module

    def translate(self, text: str, source: str, target: str) -> str | None:
        langs = {lang.code: lang for lang in self._translate.get_installed_languages()}
        src, dst = langs.get(source), langs.get(target)
        if src is None or dst is None:
            return None
        translation = src.get_translation(dst)
        return str(translation.translate(text)) if translation is not None else None


@cache
def available() -> Translator | None:
    """The installed translation engine, or None (then: "no translation available")."""
    if importlib.util.find_spec("argostranslate") is None:
        return None
    import argostranslate.translate as module  # type: ignore[import-not-found, unused-ignore]

    return ArgosTranslator(module)


def translate(
    text: str, source: str, target: str, engine: Translator | None = None
) -> dict[str, Any]:
    """``{"text": translation or None, "engine": name or None}`` for display only."""
    if source == target:
        return {"text": None, "engine": None, "same_language": True}
    chosen = engine if engine is not None else available()
    if chosen is None:
        return {"text": None, "engine": None}
    try:
        out = chosen.translate(text, source, target)
    except Exception:  # an engine failing must never hide the original
        out = None
    return {"text": out, "engine": chosen.name if out is not None else None}
