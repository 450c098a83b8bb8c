"""Checking a form's fields. Every problem is a FormError naming the field and a
catalog key, so the sender reads it in their own language before anything is sent."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from ..errors import Malformed
from .schema import CASUALTY_FIELDS, FORMS, Field, Form, form_body

_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_INDEX = 2**63 - 1  # a log index, as every integer on the wire


class FormError(Malformed):
    """A form field is not acceptable; ``key`` and ``params`` localize the message."""

    def __init__(self, path: str, key: str, **params: Any) -> None:
        self.key = key
        self.params = params
        super().__init__(f"{path}: {key} {params}" if params else f"{path}: {key}", field=path)
        self.path = path


class UnknownVersion(Malformed):
    """A newer version of a known form: shown raw, never dropped."""


def parse_time(value: Any, path: str) -> datetime:
    if not isinstance(value, str) or not value.endswith("Z"):
        raise FormError(path, "error.datetime")
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00")
    except ValueError as exc:
        raise FormError(path, "error.datetime") from exc
    return parsed.astimezone(UTC)


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FormError(path, "error.number")
    try:
        number = float(value)  # an integer too large for a float is refused, not an error
    except OverflowError as exc:
        raise FormError(path, "error.number") from exc
    if not math.isfinite(number):
        raise FormError(path, "error.number")
    return number


def _point(value: Any, path: str) -> tuple[float, float]:
    if not isinstance(value, dict):
        raise FormError(path, "error.coordinates")
    lat, lon = _number(value.get("lat"), path), _number(value.get("lon"), path)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise FormError(path, "error.coordinates")
    return lat, lon


def _int(value: Any, path: str, f: Field) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormError(path, "error.integer")
    if value < f.minimum:
        raise FormError(path, "error.negative")
    if value > f.maximum:
        raise FormError(path, "error.too_big", max=f.maximum)
    return value


def _text(value: Any, path: str, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FormError(path, "error.text")
    try:
        value.encode()
    except UnicodeEncodeError:  # JSON can carry lone surrogates: not text
        raise FormError(path, "error.text") from None
    if len(value) > max_len:
        raise FormError(path, "error.too_long", max=max_len)
    return value


def _check(f: Field, value: Any, path: str) -> None:
    kind = f.kind
    if kind == "text":
        _text(value, path, f.max_len)
    elif kind == "int":
        _int(value, path, f)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise FormError(path, "error.bool")
    elif kind == "enum":
        if value not in f.values:
            raise FormError(path, "error.enum", value=str(value)[:40])
    elif kind == "datetime":
        parse_time(value, path)
    elif kind == "area":
        if not isinstance(value, dict):
            raise FormError(path, "error.area")
        if "polygon" in value:
            poly = value["polygon"]
            if not isinstance(poly, list) or not 3 <= len(poly) <= 100:
                raise FormError(path, "error.polygon")
            for i, p in enumerate(poly):
                _point(p, f"{path}.polygon[{i}]")
        elif "point" in value:
            _point(value["point"], f"{path}.point")
            if "radius_km" in value:
                r = _number(value["radius_km"], f"{path}.radius_km")
                if not 0 <= r <= 1000:
                    raise FormError(f"{path}.radius_km", "error.radius")
        else:
            raise FormError(path, "error.area")
    elif kind == "band":
        if not isinstance(value, dict):
            raise FormError(path, "error.band")
        lo, hi = _number(value.get("min_m"), path), _number(value.get("max_m"), path)
        if lo < 0 or hi < lo or hi > 100_000:
            raise FormError(path, "error.band")
    elif kind == "window":
        if not isinstance(value, dict):
            raise FormError(path, "error.window")
        start = parse_time(value.get("start"), f"{path}.start")
        end = parse_time(value.get("end"), f"{path}.end")
        if end <= start:
            raise FormError(path, "error.end_before_start")
    elif kind == "counts":
        if not isinstance(value, list) or len(value) > f.max_items:
            raise FormError(path, "error.list", max=f.max_items)
        for i, item in enumerate(value):
            p = f"{path}[{i}]"
            if not isinstance(item, dict) or item.get("means") not in f.values:
                raise FormError(
                    f"{p}.means",
                    "error.enum",
                    value=str(item.get("means") if isinstance(item, dict) else item)[:40],
                )
            _int(item.get("count"), f"{p}.count", Field("count", "int"))
            _text(item.get("source"), f"{p}.source", 200)
    elif kind == "casualties":
        if not isinstance(value, dict):
            raise FormError(path, "error.casualties")
        for key in CASUALTY_FIELDS:
            if key in value:
                _int(value[key], f"{path}.{key}", Field(key, "int"))
        _text(value.get("source"), f"{path}.source", 200)
        unknown = set(value) - set(CASUALTY_FIELDS) - {"source"}
        if unknown:
            raise FormError(f"{path}.{sorted(unknown)[0]}", "error.unknown_field")
    elif kind == "ref":
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("index"), int)
            or isinstance(value["index"], bool)
            or not 0 <= value["index"] <= MAX_INDEX
            or not isinstance(value.get("hash"), str)
            or not _HEX64.fullmatch(value["hash"])
        ):
            raise FormError(path, "error.ref")
    elif kind == "list":
        if not isinstance(value, list) or not value or len(value) > f.max_items:
            raise FormError(path, "error.list", max=f.max_items)
        for i, item in enumerate(value):
            _text(item, f"{path}[{i}]", f.max_len)


def validate(body: dict[str, Any]) -> Form:
    """Check a form body; return its schema. FormError / UnknownVersion otherwise."""
    if not isinstance(body, dict):
        raise FormError("form", "error.fields")
    name = body.get("form")
    form = FORMS.get(str(name))
    if form is None:
        raise FormError("form", "error.unknown_form", value=str(name)[:40])
    version = body.get("version")
    if not isinstance(version, int) or version < 1:
        raise FormError("version", "error.integer")
    if version > form.version:
        raise UnknownVersion(
            f"{name} version {version} is newer than this station knows", field="version"
        )
    fields = body.get("fields")
    if not isinstance(fields, dict):
        raise FormError("fields", "error.fields")
    known = {f.name for f in form.fields}
    for key in fields:
        if key not in known:
            raise FormError(str(key)[:40], "error.unknown_field")
    for f in form.fields:
        if f.name not in fields or fields[f.name] is None:
            if f.required:
                raise FormError(f.name, "error.required")
            continue
        _check(f, fields[f.name], f.name)
    if (
        name == "deconfliction-notice"
        and fields.get("activity") == "other"
        and not fields.get("activity_other")
    ):
        raise FormError("activity_other", "error.required")
    return form


def field_errors(name: str, fields: dict[str, Any]) -> dict[str, FormError]:
    """Every field's first error at once (for a form an operator is filling in): the
    same checks as ``validate``, keyed by top-level field name."""
    form = FORMS[name]
    errors: dict[str, FormError] = {}
    for f in form.fields:
        if fields.get(f.name) is None:
            if f.required:
                errors[f.name] = FormError(f.name, "error.required")
            continue
        try:
            _check(f, fields[f.name], f.name)
        except FormError as exc:
            errors[f.name] = exc
    if not errors:
        try:
            validate(form_body(name, fields))
        except FormError as exc:
            errors[exc.path.split(".")[0].split("[")[0]] = exc
    return errors
