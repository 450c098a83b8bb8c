"""Walk an operator through a form, field by field, in their language."""

from __future__ import annotations

from typing import Any

import click

from ..i18n import t
from .render import error_text
from .schema import CASUALTY_FIELDS, FORMS, Field
from .validate import FormError, _check


def _ask_point(label: str) -> dict[str, float]:
    text = click.prompt(f"{label} (lat, lon)")
    lat, _, lon = str(text).partition(",")
    try:
        return {"lat": float(lat), "lon": float(lon)}
    except ValueError:
        return {"lat": 999.0, "lon": 999.0}  # refused by the check, which says why


def _ask(form: str, f: Field, lang: str) -> Any:
    label = t(lang, f"field.{form}.{f.name}")
    if f.kind == "enum":
        group = {"activity": "activity", "incident": "incident"}.get(f.name, f.name)
        for i, v in enumerate(f.values, 1):
            click.echo(f"  {i}. {t(lang, f'enum.{group}.{v}')}")
        pick = click.prompt(label, type=click.IntRange(1, len(f.values)))
        return f.values[pick - 1]
    if f.kind == "bool":
        return click.confirm(label, default=True)
    if f.kind == "int":
        return click.prompt(label, type=int)
    if f.kind == "area":
        area: dict[str, Any] = {"point": _ask_point(label)}
        area["radius_km"] = click.prompt(
            f"  {t(lang, 'label.radius')} ({t(lang, 'unit.km')})", type=float, default=1.0
        )
        return area
    if f.kind == "band":
        return {
            "min_m": click.prompt(f"{label} min ({t(lang, 'unit.m')})", type=float),
            "max_m": click.prompt(f"{label} max ({t(lang, 'unit.m')})", type=float),
        }
    if f.kind == "window":
        return {
            "start": click.prompt(f"{label}: {t(lang, 'label.from')} (YYYY-MM-DDTHH:MM:SSZ)"),
            "end": click.prompt(f"{label}: {t(lang, 'label.to')} (YYYY-MM-DDTHH:MM:SSZ)"),
        }
    if f.kind == "counts":
        counts = []
        for v in f.values:
            n = click.prompt(f"{label}: {t(lang, 'enum.means.' + v)}", type=int, default=0)
            if n:
                counts.append(
                    {"means": v, "count": n, "source": click.prompt(f"  {t(lang, 'label.source')}")}
                )
        return counts
    if f.kind == "casualties":
        out: dict[str, Any] = {
            k: click.prompt(t(lang, "casualty." + k), type=int, default=0) for k in CASUALTY_FIELDS
        }
        out["source"] = click.prompt(f"  {t(lang, 'label.source')}")
        return out
    if f.kind == "list":
        return [s.strip() for s in str(click.prompt(f"{label} (a; b; c)")).split(";") if s.strip()]
    if f.kind == "ref":
        return {
            "index": click.prompt(f"{label} #", type=int),
            "hash": click.prompt(f"{label} hash"),
        }
    return click.prompt(label + (" (YYYY-MM-DDTHH:MM:SSZ)" if f.kind == "datetime" else ""))


def prompt_form(name: str, lang: str) -> dict[str, Any]:
    """Ask for every field (optional ones may be skipped); re-ask until each is valid."""
    form = FORMS[name]
    click.echo(t(lang, f"form.{name}"))
    fields: dict[str, Any] = {}
    for f in form.fields:
        label = t(lang, f"field.{name}.{f.name}")
        if not f.required and not click.confirm(f"{label}?", default=False):
            continue
        while True:
            value = _ask(name, f, lang)
            try:
                _check(f, value, f.name)
            except FormError as exc:
                click.echo(error_text(exc, lang), err=True)
                continue
            fields[f.name] = value
            break
    return fields
