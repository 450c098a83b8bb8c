"""Alarms are stored as a kind, a text key and parameters, and read in the reader's
language: English, Russian or Ukrainian, from the same stored row."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from hotline.i18n import catalog
from hotline.station.alarms import TEXT_PREFIX, Alarm, AlarmKind, alarm_text
from hotline.station.store import StationStore

from .conftest import World
from .test_console_edges import TOKEN, console_app

SRC = Path(__file__).resolve().parents[1] / "src" / "hotline"


def raised_texts() -> set[str]:
    """Every text key given to ``Alarm(...)`` in the source."""
    keys: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "Alarm"
            ):
                text = node.args[1] if len(node.args) > 1 else None
                if isinstance(text, ast.Constant) and isinstance(text.value, str):
                    keys.add(text.value)
    return keys


def test_every_alarm_raised_has_its_text_in_three_languages() -> None:
    keys = raised_texts()
    assert len(keys) >= 25  # the scan found the call sites
    for key in keys:
        texts = {lang: catalog(lang).get(TEXT_PREFIX + key) for lang in ("en", "ru", "uk")}
        assert all(m is not None and m.string for m in texts.values()), key
        blanks = {lang: set(re.findall(r"{(\w+)}", str(m.string))) for lang, m in texts.items()}  # type: ignore[union-attr]
        assert blanks["en"] == blanks["ru"] == blanks["uk"], key
        assert texts["ru"].string != texts["en"].string, key  # type: ignore[union-attr]
        assert texts["uk"].string != texts["ru"].string, key  # type: ignore[union-attr]


def test_one_stored_alarm_reads_in_each_operators_language(tmp_path: Path) -> None:
    store = StationStore(tmp_path / "station.db")
    params = {"party": "ua", "channel": "us-ru-ua", "missed": 3}
    with store.transaction():
        store.add_alarm(Alarm(AlarmKind.PARTY_DOWN, "party-down", level=3, params=params), 1)
    (record,) = store.alarms()
    assert record.text == "party-down" and dict(record.params) == params
    assert record.text_in("en") == "ua silent on us-ru-ua: 3 link tests missed"
    assert record.text_in("ru") == "ua молчит в канале us-ru-ua: пропущено проверок связи: 3"
    assert record.text_in("uk") == "ua мовчить у каналі us-ru-ua: пропущено перевірок зв'язку: 3"
    assert record.message == record.text_in("en")


def test_an_alarm_that_cannot_be_rendered_is_still_shown(tmp_path: Path) -> None:
    # A row stored before texts were keys, a key no catalog has, parameters missing:
    # each shows something readable rather than vanishing or raising.
    store = StationStore(tmp_path / "station.db")
    with store.transaction():
        store.add_alarm(Alarm(AlarmKind.FORK, "relay signed two roots", channel="a"), 1)
        store.add_alarm(Alarm(AlarmKind.FORK, "party-down", channel="b"), 2)
    texts = {r.channel: r.text_in("ru") for r in store.alarms()}
    assert texts["a"] == "relay signed two roots"
    assert texts["b"] == "party-down"
    assert alarm_text("party-down", {"party": "ru"}, "xx") == "party-down"
    # Hostile stored parameters (not str or int) are dropped on reading, never executed.
    with store.transaction():
        store._x("UPDATE alarm SET params=? WHERE channel='a'", '{"x": {"y": 1}, "n": 2}')
    (a,) = [r for r in store.alarms() if r.channel == "a"]
    assert dict(a.params) == {"n": 2}


def test_the_local_api_answers_an_alarm_in_the_language_asked(tmp_path: Path, world: World) -> None:
    app, core = console_app(tmp_path, world)
    params = {"party": "ua", "channel": "us-ru-ua", "missed": 3}
    with core.store.transaction():
        core.store.add_alarm(Alarm(AlarmKind.PARTY_DOWN, "party-down", params=params), 1)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        en = client.get("/api/alarms", headers=auth).json()["items"][0]
        uk = client.get("/api/alarms?lang=uk", headers=auth).json()["items"][0]
        odd = client.get("/api/alarms?lang=xx", headers=auth).json()["items"][0]
    assert en["message"] == "ua silent on us-ru-ua: 3 link tests missed"
    assert uk["message"] == "ua мовчить у каналі us-ru-ua: пропущено перевірок зв'язку: 3"
    assert odd["message"] == en["message"]
    assert en["text"] == "party-down" and en["params"] == params


@given(
    st.sampled_from([*sorted(raised_texts()), "{0}", "{x.__class__}", "plain {", ""]),
    st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=20), st.integers())),
    st.sampled_from(["en", "ru", "uk", "xx", ""]),
)
def test_rendering_an_alarm_never_fails_whatever_was_stored(
    text: str, params: dict[str, str | int], lang: str
) -> None:
    out = alarm_text(text, params, lang)
    assert isinstance(out, str)
    assert "__class__" not in out or text == "{x.__class__}"  # no attribute lookups run
