"""Forms: validated on both sides, read in each operator's language, catalogs complete."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hotline.forms import FORMS, FormError, UnknownVersion, form_body, render, validate
from hotline.forms.render import error_text
from hotline.i18n import LANGUAGES, keys, t
from hotline.translate import translate

REPORT: dict[str, Any] = form_body(
    "incident-report",
    {
        "time": "2026-11-25T02:10:00Z",
        "location": {"point": {"lat": 50.45, "lon": 30.52}, "radius_km": 3},
        "incident": "drone-strike",
        "counts": [
            {"means": "drones-launched", "count": 183, "source": "Повітряні сили ЗСУ"},
            {"means": "ballistic-missiles", "count": 2, "source": "Повітряні сили ЗСУ"},
            {"means": "drones-downed", "count": 95, "source": "Повітряні сили ЗСУ"},
        ],
        "casualties": {"killed_civilian": 0, "injured_civilian": 4, "source": "ДСНС України"},
        "notes": "Уламки впали на житловий квартал.",
    },
)

NOTICE: dict[str, Any] = form_body(
    "deconfliction-notice",
    {
        "activity": "repair-power-infrastructure",
        "area": {
            "polygon": [
                {"lat": 47.5, "lon": 34.5},
                {"lat": 47.6, "lon": 34.6},
                {"lat": 47.4, "lon": 34.7},
            ]
        },
        "altitude": {"min_m": 0, "max_m": 150},
        "window": {"start": "2026-11-26T06:00:00Z", "end": "2026-11-26T18:00:00Z"},
        "contact": "Energy repair cell",
        "ack_requested": True,
    },
)


def test_every_catalog_has_every_key_of_every_other() -> None:
    sets = {lang: keys(lang) for lang in LANGUAGES}
    union = set().union(*sets.values())
    for lang, present in sets.items():
        assert union - present == set(), f"{lang} misses {sorted(union - present)[:5]}"


def test_every_schema_label_and_value_is_in_the_catalogs() -> None:
    for name, form in FORMS.items():
        for lang in LANGUAGES:
            assert t(lang, f"form.{name}") != f"form.{name}"
            for f in form.fields:
                assert t(lang, f"field.{name}.{f.name}") != f"field.{name}.{f.name}"
                group = {"counts": "means"}.get(f.name, f.name)
                for v in f.values:
                    assert t(lang, f"enum.{group}.{v}") != f"enum.{group}.{v}", (name, v)


def test_the_incident_report_reads_field_for_field_in_each_language() -> None:
    validate(REPORT)
    en, ru, uk = (dict(render(REPORT, lang)["fields"]) for lang in ("en", "ru", "uk"))
    assert render(REPORT, "ru")["title"] == "Донесение об инциденте"
    assert en["Incident type"] == "Drone strike"
    assert ru["Тип инцидента"] == "Удар беспилотников"
    assert uk["Тип інциденту"] == "Удар безпілотників"
    assert "Drones launched: 183" in en["Counts by means"]
    assert "Запущено беспилотников: 183" in ru["Количество по средствам"]
    assert "Баллистические ракеты: 2" in ru["Количество по средствам"]
    assert "Сбито беспилотников: 95" in ru["Количество по средствам"]
    assert "Ранено, гражданских: 4" in ru["Потери"]
    assert "UTC" in en["Time (UTC)"] and "25 ноября 2026" in ru["Время (UTC)"]
    assert "MGRS 36UUA" in en["Location"] and "50,45°N" in ru["Место"]
    # Free text inside a form stays in the sender's words.
    assert ru["Примечания"] == "Уламки впали на житловий квартал."


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda f: f["location"]["point"].update(lat=91), "error.coordinates"),
        (lambda f: f.update(time="yesterday"), "error.datetime"),
        (lambda f: f["counts"][0].update(count=-5), "error.negative"),
        (lambda f: f.update(incident="alien-invasion"), "error.enum"),
        (lambda f: f.update(notes="x" * 4001), "error.too_long"),
        (lambda f: f.update(notes="\ud800 lone surrogate"), "error.text"),  # no UTF-8 for it
        (lambda f: f.pop("incident"), "error.required"),
        (lambda f: f.update(extra=1), "error.unknown_field"),
    ],
)
def test_invalid_incident_reports_are_refused_with_a_clear_error(change: Any, key: str) -> None:
    body = copy.deepcopy(REPORT)
    change(body["fields"])
    with pytest.raises(FormError) as caught:
        validate(body)
    assert caught.value.key == key


def test_end_before_start_is_refused_in_the_senders_language() -> None:
    body = copy.deepcopy(NOTICE)
    body["fields"]["window"]["end"] = "2026-11-26T05:00:00Z"
    with pytest.raises(FormError) as caught:
        validate(body)
    assert error_text(caught.value, "uk") == "window: кінець не пізніше за початок"
    assert error_text(caught.value, "ru") == "window: окончание не позже начала"


def test_polygon_notice_renders_with_mgrs() -> None:
    validate(NOTICE)
    fields = dict(render(NOTICE, "en")["fields"])
    assert fields["Activity"] == "Repair work on power infrastructure"
    assert fields["Area"].startswith("polygon: 47.5°N 34.5°E (MGRS 36T")
    assert fields["Altitude band"] == "0-150 m"


def test_an_unknown_newer_version_is_shown_raw_not_dropped() -> None:
    body = {**REPORT, "version": 7}
    with pytest.raises(UnknownVersion):
        validate(body)
    shown = render(body, "ru")
    assert shown["fields"][0][0] == "raw" and "183" in shown["fields"][0][1]
    assert shown["note"] == t("ru", "label.unknown_version")


def test_without_an_engine_there_is_no_translation_and_the_original_stays() -> None:
    assert translate("Привет", "ru", "en")["text"] is None  # no engine installed here

    class Fake:
        name = "fake"

        def translate(self, text: str, source: str, target: str) -> str | None:
            return f"<{text}>"

    out = translate("Привет", "ru", "en", engine=Fake())
    assert out == {"text": "<Привет>", "engine": "fake"}
