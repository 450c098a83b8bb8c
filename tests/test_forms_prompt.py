"""The interactive form prompt walks an operator through a form in their language."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from hotline.forms import validate
from hotline.forms.prompt import prompt_form


@click.command()
@click.argument("name")
@click.argument("lang")
def walk(name: str, lang: str) -> None:
    click.echo(json.dumps(prompt_form(name, lang), ensure_ascii=False))


def test_a_request_for_information_in_ukrainian() -> None:
    answers = (
        "\n".join(
            [
                "Рух колони",  # subject
                "Чи підтверджуєте рух колони?",  # question
                "y",  # reply_by? (optional: yes)
                "2026-11-26T12:00:00Z",
            ]
        )
        + "\n"
    )
    result = CliRunner().invoke(walk, ["request-for-information", "uk"], input=answers)
    assert result.exit_code == 0, result.output
    assert "Запит інформації" in result.output and "Тема" in result.output
    fields = json.loads(result.output.strip().splitlines()[-1])
    assert fields == {
        "subject": "Рух колони",
        "question": "Чи підтверджуєте рух колони?",
        "reply_by": "2026-11-26T12:00:00Z",
    }
    validate({"type": "form", "form": "request-for-information", "version": 1, "fields": fields})


def test_a_bad_answer_is_explained_in_russian_and_asked_again() -> None:
    answers = (
        "\n".join(
            [
                "Переговоры",  # place
                "завтра",  # time: refused
                "2026-12-01T10:00:00Z",
                "Генерал А; Полковник Б",
                "Обмен пленными; Деконфликтация",
            ]
        )
        + "\n"
    )
    result = CliRunner().invoke(walk, ["meeting-proposal", "ru"], input=answers)
    assert result.exit_code == 0, result.output
    assert "должно быть время UTC" in result.output
    fields = json.loads(result.output.strip().splitlines()[-1])
    assert fields["time"] == "2026-12-01T10:00:00Z"
    assert fields["delegation"] == ["Генерал А", "Полковник Б"]
