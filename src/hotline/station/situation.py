"""Where and when: the places named by messages' forms, for the console's maps.

Every form field of kind ``area`` (a point with an optional radius, or a polygon) is a
place; a form's ``window`` field (a deconfliction notice) or its ``time`` field (an
incident report) says when. Pure functions over stored messages: a body that fails
its form's validation names no place (it is shown raw on its message page instead).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .. import body as body_mod
from ..errors import HotlineError
from ..forms.validate import parse_time, validate
from .store import Message


@dataclass(frozen=True)
class Place:
    """One area named by one field of one message's form."""

    channel: str
    index: int
    form: str
    field: str
    sender: str
    party: str
    precedence: int
    relay_ms: int
    lat: float
    lon: float
    radius_m: float | None  # a circle; None: a point (or the polygon's first vertex)
    polygon: tuple[tuple[float, float], ...] | None
    start_ms: int | None  # the form's window, if it has one
    end_ms: int | None
    at_ms: int | None  # the form's time (an incident), if it has one

    @property
    def key(self) -> str:
        return f"{self.channel}/{self.index}/{self.field}"


def _ms(value: Any) -> int | None:
    try:
        return int(parse_time(value, "").timestamp() * 1000)
    except (HotlineError, OverflowError, ValueError):
        return None


def places_of(m: Message) -> list[Place]:
    """The places a message's form names (none for text, receipts, invalid forms)."""
    try:
        content = body_mod.parse_body(m.body.encode())
    except HotlineError:
        return []
    if not isinstance(content, body_mod.Form):
        return []
    data = content.to_dict()
    try:
        form = validate(data)
    except HotlineError:
        return []
    fields = data["fields"]
    start = end = at = None
    for f in form.fields:
        value = fields.get(f.name)
        if f.kind == "window" and isinstance(value, dict):
            start, end = _ms(value.get("start")), _ms(value.get("end"))
        elif f.kind == "datetime" and f.name == "time":
            at = _ms(value)
    out = []
    for f in form.fields:
        area = fields.get(f.name)
        if f.kind != "area" or not isinstance(area, dict):
            continue
        polygon = None
        if "polygon" in area:
            polygon = tuple((float(p["lat"]), float(p["lon"])) for p in area["polygon"])
            lat, lon = polygon[0]
            radius = None
        else:
            lat, lon = float(area["point"]["lat"]), float(area["point"]["lon"])
            radius = float(area["radius_km"]) * 1000 if "radius_km" in area else None
        out.append(
            Place(
                m.channel,
                m.index,
                form.name,
                f.name,
                m.sender,
                m.party,
                m.precedence,
                m.relay_ms,
                lat,
                lon,
                radius,
                polygon,
                start,
                end,
                at,
            )
        )
    return out


@dataclass(frozen=True)
class Situation:
    notices: list[Place]  # places of forms with a window overlapping the asked one
    incidents: list[Place]  # places of forms with a time (or, lacking one, sent) since


def situation(
    messages: Iterable[Message], start_ms: int, end_ms: int, incidents_since_ms: int
) -> Situation:
    """Notices whose window overlaps [start, end], and incidents from ``incidents_since``
    to ``end``; each list soonest (notices) or newest (incidents) first."""
    notices, incidents = [], []
    for m in messages:
        for p in places_of(m):
            if p.start_ms is not None and p.end_ms is not None:
                if p.start_ms <= end_ms and p.end_ms >= start_ms:
                    notices.append(p)
            else:
                at = p.at_ms if p.at_ms is not None else p.relay_ms
                if incidents_since_ms <= at <= end_ms:
                    incidents.append(p)
    notices.sort(key=lambda p: (p.start_ms or 0, p.channel, p.index))
    incidents.sort(key=lambda p: (-(p.at_ms or p.relay_ms), p.channel, p.index))
    return Situation(notices, incidents)
