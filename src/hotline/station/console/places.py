"""Places as the console's maps draw them: coordinates, labels in the reader's
language, and the message each belongs to (one dict per place, read by console.js)."""

from __future__ import annotations

from typing import Any

from ... import i18n
from ...envelope import Precedence
from ...forms.render import mgrs_of
from ...i18n import number, t, when
from ..situation import Place


def degrees(lat: float, lon: float, lang: str) -> str:
    """Decimal degrees with hemisphere letters, in the reader's number format."""
    ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
    return f"{i18n.degrees(abs(lat), lang)}°{ns} {i18n.degrees(abs(lon), lang)}°{ew}"


def acknowledgment(state: dict[str, dict[str, Any]], lang: str) -> tuple[bool, str]:
    """Whether every recipient party acknowledged, and who did or has yet to, as text."""
    done = sorted(p for p, s in state.items() if s.get("acknowledged"))
    waiting = sorted(p for p, s in state.items() if not s.get("acknowledged"))
    parts = []
    if done:
        parts.append(t(lang, "ui.acknowledged_parties", parties=", ".join(done)))
    if waiting:
        parts.append(t(lang, "ui.awaiting_parties", parties=", ".join(waiting)))
    return (not waiting and bool(done)), "; ".join(parts) or "-"


def place_view(p: Place, state: dict[str, dict[str, Any]], lang: str) -> dict[str, Any]:
    if p.start_ms is not None and p.end_ms is not None:
        period = f"{when(p.start_ms, lang)} – {when(p.end_ms, lang)}"
    else:
        period = when(p.at_ms if p.at_ms is not None else p.relay_ms, lang)
    acked, ack_text = acknowledgment(state, lang)
    return {
        "key": p.key,
        "channel": p.channel,
        "index": p.index,
        "href": f"/message/{p.channel}/{p.index}",
        "title": t(lang, "form." + p.form),
        "field": t(lang, f"field.{p.form}.{p.field}"),
        "kind": "notice" if p.start_ms is not None else "incident",
        "sender": p.sender,
        "precedence": Precedence(p.precedence).name,
        "precedence_label": t(lang, "precedence." + Precedence(p.precedence).name),
        "lat": p.lat,
        "lon": p.lon,
        "radius_m": p.radius_m,
        "polygon": [list(v) for v in p.polygon] if p.polygon else None,
        "degrees": degrees(p.lat, p.lon, lang),
        "mgrs": mgrs_of(p.lat, p.lon),
        "radius": (
            f"{number(p.radius_m / 1000, lang)} {t(lang, 'unit.km')}"
            if p.radius_m is not None
            else ""
        ),
        "period": period,
        "acknowledged": acked,
        "ack_text": ack_text,
    }
