"""Form schemas: language-neutral fields, validated the same way on both sides.

A schema is data: each field has a type, whether it is required, and limits. Labels
and enumeration names live in the catalogs (``locale/``), never here, so a form
reads the same in English, Russian and Ukrainian without machine translation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # text, int, bool, enum, datetime, area, point, band, window, counts,
    #            casualties, ref, list
    required: bool = True
    max_len: int = 200
    values: tuple[str, ...] = ()
    max_items: int = 20
    minimum: int = 0
    maximum: int = 10**9


@dataclass(frozen=True)
class Form:
    name: str
    version: int
    fields: tuple[Field, ...] = field(default_factory=tuple)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


ACTIVITIES = (
    "air-operations",
    "missile-or-drone-launch",
    "naval-transit",
    "exercise",
    "humanitarian-movement",
    "repair-power-infrastructure",
    "other",
)
INCIDENTS = (
    "drone-strike",
    "missile-strike",
    "air-defence-engagement",
    "shelling",
    "strike-on-energy-infrastructure",
    "other",
)
MEANS = (
    "drones-launched",
    "drones-downed",
    "ballistic-missiles",
    "cruise-missiles",
    "missiles-downed",
    "artillery-shells",
    "other",
)
CASUALTY_FIELDS = ("killed_civilian", "killed_military", "injured_civilian", "injured_military")

FORMS: dict[str, Form] = {
    f.name: f
    for f in (
        Form(
            "deconfliction-notice",
            1,
            (
                Field("activity", "enum", values=ACTIVITIES),
                Field("activity_other", "text", required=False),
                Field("area", "area"),
                Field("altitude", "band", required=False),
                Field("window", "window"),
                Field("contact", "text"),
                Field("ack_requested", "bool"),
            ),
        ),
        Form(
            "incident-report",
            1,
            (
                Field("time", "datetime"),
                Field("location", "area"),
                Field("incident", "enum", values=INCIDENTS),
                Field("counts", "counts", required=False, values=MEANS),
                Field("casualties", "casualties", required=False),
                Field("notes", "text", required=False, max_len=4000),
            ),
        ),
        Form(
            "request-for-information",
            1,
            (
                Field("subject", "text"),
                Field("question", "text", max_len=4000),
                Field("reply_by", "datetime", required=False),
            ),
        ),
        Form(
            "rfi-reply",
            1,
            (
                Field("in_reply_to", "ref"),
                Field("answer", "text", max_len=4000),
            ),
        ),
        Form(
            "meeting-proposal",
            1,
            (
                Field("place", "text"),
                Field("time", "datetime"),
                Field("delegation", "list", max_items=30),
                Field("agenda", "list", max_items=30),
            ),
        ),
        Form(
            "link-test",
            1,
            (
                Field("sequence", "int", maximum=10**12),
                Field("note", "text", required=False),
            ),
        ),
    )
}


def form_body(name: str, fields: dict[str, Any], version: int | None = None) -> dict[str, Any]:
    form = FORMS[name]
    return {"type": "form", "form": name, "version": version or form.version, "fields": fields}
