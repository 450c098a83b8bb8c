"""A form body as label/value lines in the reader's language (no machine translation)."""

from __future__ import annotations

import json
from typing import Any

import mgrs

from ..errors import HotlineError
from ..i18n import degrees, number, t, when
from .schema import CASUALTY_FIELDS, FORMS, Field
from .validate import UnknownVersion, validate

_MGRS = mgrs.MGRS()


def mgrs_of(lat: float, lon: float) -> str:
    try:
        return str(_MGRS.toMGRS(lat, lon, MGRSPrecision=4))
    except Exception:  # outside MGRS coverage (polar) or a library refusal
        return "-"


def _coord(point: dict[str, Any], lang: str) -> str:
    lat, lon = float(point["lat"]), float(point["lon"])
    ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
    dd = f"{degrees(abs(lat), lang)}°{ns} {degrees(abs(lon), lang)}°{ew}"
    return f"{dd} (MGRS {mgrs_of(lat, lon)})"


def _value(form: str, f: Field, value: Any, lang: str) -> str:
    kind = f.kind
    if kind == "enum":
        group = {"activity": "activity", "incident": "incident"}.get(f.name, f.name)
        return t(lang, f"enum.{group}.{value}")
    if kind == "bool":
        return t(lang, "value.yes" if value else "value.no")
    if kind == "int":
        return number(value, lang)
    if kind == "datetime":
        return when(value, lang)
    if kind == "area":
        if "polygon" in value:
            pts = "; ".join(_coord(p, lang) for p in value["polygon"])
            return f"{t(lang, 'label.polygon')}: {pts}"
        text = _coord(value["point"], lang)
        if "radius_km" in value:
            text += (
                f", {t(lang, 'label.radius')} {number(value['radius_km'], lang)} "
                f"{t(lang, 'unit.km')}"
            )
        return text
    if kind == "band":
        return f"{number(value['min_m'], lang)}-{number(value['max_m'], lang)} {t(lang, 'unit.m')}"
    if kind == "window":
        return (
            f"{t(lang, 'label.from')} {when(value['start'], lang)} {t(lang, 'label.to')} "
            f"{when(value['end'], lang)}"
        )
    if kind == "counts":
        return "; ".join(
            f"{t(lang, 'enum.means.' + c['means'])}: {number(c['count'], lang)} "
            f"({t(lang, 'label.source')}: {c['source']})"
            for c in value
        )
    if kind == "casualties":
        parts = [
            f"{t(lang, 'casualty.' + k)}: {number(value[k], lang)}"
            for k in CASUALTY_FIELDS
            if k in value
        ]
        return "; ".join(parts) + f" ({t(lang, 'label.source')}: {value['source']})"
    if kind == "ref":
        return f"{t(lang, 'label.entry')} #{value['index']} ({value['hash'][:16]}…)"
    if kind == "list":
        return "; ".join(str(v) for v in value)
    return str(value)


def render(body: dict[str, Any], lang: str) -> dict[str, Any]:
    """``{"title", "fields": [(label, value)], "note"}``; unknown or invalid: shown raw."""
    raw = json.dumps(body.get("fields"), ensure_ascii=False, indent=1)
    try:
        form = validate(body)
    except UnknownVersion:
        return {
            "title": t(lang, f"form.{body.get('form')}"),
            "fields": [("raw", raw)],
            "note": t(lang, "label.unknown_version"),
        }
    except HotlineError:
        return {
            "title": str(body.get("form")),
            "fields": [("raw", raw)],
            "note": t(lang, "label.invalid_form"),
        }
    fields = body["fields"]
    lines = [
        (t(lang, f"field.{form.name}.{f.name}"), _value(form.name, f, fields[f.name], lang))
        for f in form.fields
        if fields.get(f.name) is not None
    ]
    return {"title": t(lang, f"form.{form.name}"), "fields": lines, "note": None}


def schema_lines(name: str, lang: str) -> list[str]:
    """A form's schema with labels in ``lang`` (for `hotline forms show`)."""
    form = FORMS[name]
    out = [f"{t(lang, 'form.' + name)} ({name} v{form.version})"]
    for f in form.fields:
        flag = "" if f.required else "  [optional]"
        out.append(f"  {f.name}: {t(lang, f'field.{name}.{f.name}')} ({f.kind}){flag}")
        if f.kind == "enum":
            group = {"activity": "activity", "incident": "incident"}.get(f.name, f.name)
            for v in f.values:
                out.append(f"      {v}: {t(lang, f'enum.{group}.{v}')}")
        if f.kind == "counts":
            for v in f.values:
                out.append(f"      means {v}: {t(lang, 'enum.means.' + v)}")
    return out


def error_text(exc: HotlineError, lang: str) -> str:
    """A form error in the operator's language."""
    key = getattr(exc, "key", None)
    if key is None:
        return str(exc)
    params = getattr(exc, "params", {})
    return f"{exc.field}: {t(lang, key, **params)}"
