"""`hotline verify` believes a transcript only against a trust anchor given apart from it.

A transcript carries its own roster, so anyone can make keys for every party and the
relay and write a conversation that holds together. Verified against the roster the
parties really signed (its file or hash) or their root keys, such a fabrication fails;
without any pin the report says it checked consistency only, and exits 7.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hotline.anchor import Anchor, root_fingerprint, roster_hash
from hotline.cli import main
from hotline.errors import Malformed
from hotline.transcript import Verdict, verify

from .logbuild import ChannelLog, exchange


@functools.cache
def real() -> ChannelLog:
    return exchange()


@functools.cache
def fabricated() -> ChannelLog:
    """The same conversation, made up by someone with fresh keys for every party."""
    return exchange()


def pinned_to_real() -> Anchor:
    return Anchor(rosters=(roster_hash(real().world.roster),))


def test_a_fabricated_transcript_is_only_consistent_without_an_anchor() -> None:
    report = verify(fabricated().transcript())
    assert report.ok and not report.anchored
    assert report.verdict == Verdict.CONSISTENT_ONLY


def test_a_fabricated_transcript_fails_against_the_real_roster() -> None:
    report = verify(fabricated().transcript(), pinned_to_real())
    assert report.verdict == Verdict.FAILED and not report.anchored
    (failure,) = report.failures
    ours, theirs = roster_hash(fabricated().world.roster), roster_hash(real().world.roster)
    assert str(failure) == (
        f"us-ru (channel): not_anchored: the transcript's roster {ours} "
        f"is not the pinned roster {theirs}"
    )


def test_a_fabricated_transcript_fails_against_a_real_party_root() -> None:
    us = real().world.roster.parties["us"].root
    report = verify(fabricated().transcript(), Anchor(roots=(("us", root_fingerprint(us)),)))
    (failure,) = report.failures
    assert failure.code == "not_anchored" and failure.reason.startswith("root key of us is ")


def test_a_real_transcript_verifies_against_its_roster_or_its_roots() -> None:
    doc = real().transcript()
    assert verify(doc, pinned_to_real()).verdict == Verdict.VERIFIED
    roots = tuple((p.name, root_fingerprint(p.root)) for p in real().world.roster.parties.values())
    assert verify(doc, Anchor(roots=roots)).verdict == Verdict.VERIFIED
    assert verify(doc, Anchor(roots=roots[:1])).verdict == Verdict.VERIFIED


def test_a_pin_for_a_party_the_roster_does_not_list_fails() -> None:
    report = verify(real().transcript(), Anchor(roots=(("cn", "ab" * 32),)))
    assert [f.code for f in report.failures] == ["not_anchored"]
    assert "no party cn" in report.failures[0].reason


def test_the_report_names_the_roster_hash_and_every_root_fingerprint() -> None:
    world = real().world
    report = verify(real().transcript())
    assert report.roster_hash == hashlib.sha256(world.roster.encode()).hexdigest()
    assert report.roster == "abu-dhabi v1"
    # A fingerprint is the SHA-256 of the keys' text forms: the lines of party.pub, joined.
    assert report.roots == {
        p: hashlib.sha256("".join(k.public_keys().values()).encode()).hexdigest()
        for p, k in world.parties.items()
    }


# --- the command ----------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {
        "real": tmp_path / "real.json",
        "fabricated": tmp_path / "fabricated.json",
        "roster": tmp_path / "roster.note",
        "us.pub": tmp_path / "party.pub",
    }
    out["real"].write_text(json.dumps(real().transcript()))
    out["fabricated"].write_text(json.dumps(fabricated().transcript()))
    out["roster"].write_bytes(real().world.roster.encode())
    out["us.pub"].write_text(
        "".join(k + "\n" for k in real().world.parties["us"].public_keys().values())
    )
    return out


def run(*args: str | Path) -> Any:
    return CliRunner().invoke(main, ["verify", *map(str, args)])


def test_without_a_pin_the_command_says_consistency_only_and_exits_7(
    files: dict[str, Path],
) -> None:
    out = run(files["fabricated"])
    assert out.exit_code == 7, out.output
    assert "consistency only: no trust anchor given (use --roster" in out.output
    assert "VERIFIED" not in out.output
    assert f"hash {roster_hash(fabricated().world.roster)}" in out.output
    data = json.loads(run(files["fabricated"], "--json").output)
    assert data["verdict"] == "consistent_only" and data["ok"] and not data["anchored"]
    assert set(data["roots"]) == {"us", "ru", "ua", "ae"}


def test_with_the_real_roster_a_fabrication_fails_and_the_real_one_verifies(
    files: dict[str, Path],
) -> None:
    forged = run(files["fabricated"], "--roster", files["roster"])
    assert forged.exit_code == 4 and "FAILED" in forged.output
    assert "us-ru (channel): not_anchored: the transcript's roster" in forged.output
    honest = run(files["real"], "--roster", files["roster"])
    assert honest.exit_code == 0 and "VERIFIED" in honest.output, honest.output
    assert "trust anchor: roster " + roster_hash(real().world.roster) in honest.output


def test_a_roster_hash_or_root_pins_work_on_the_command_line(files: dict[str, Path]) -> None:
    world = real().world
    digest = roster_hash(world.roster)
    assert run(files["real"], "--roster-hash", digest.upper()).exit_code == 0
    assert run(files["fabricated"], "--roster-hash", digest).exit_code == 4
    us = root_fingerprint(world.roster.parties["us"].root)
    assert run(files["real"], "--root", f"us={us}").exit_code == 0
    assert run(files["real"], "--root", f"us={files['us.pub']}").exit_code == 0
    assert run(files["fabricated"], "--root", f"us={us}").exit_code == 4
    data = json.loads(run(files["real"], "--root", f"us={us}", "--json").output)
    assert data["verdict"] == "verified" and data["pins"] == [f"root of us {us}"]


def test_a_mistyped_pin_is_bad_input(files: dict[str, Path]) -> None:
    assert run(files["real"], "--roster-hash", "abc").exit_code == 3
    assert run(files["real"], "--root", "us").exit_code == 3
    assert run(files["real"], "--root", "ru=" + str(files["us.pub"])).exit_code == 3
    assert run(files["real"], "--roster", files["real"]).exit_code == 3  # not a roster


def test_a_file_that_is_not_json_fails_with_exit_4(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{not json")
    out = run(path)
    assert out.exit_code == 4 and "not a transcript" in out.output


def test_an_old_format_exits_4_naming_both_formats(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({**real().transcript(), "format": "hotline-transcript/v1"}))
    out = run(path, "--json")
    assert out.exit_code == 4
    (failure,) = json.loads(out.output)["failures"]
    assert failure["reason"].startswith("old format hotline-transcript/v1: this version reads")
    assert "hotline-transcript/v3" in failure["reason"]


def test_digests_are_read_in_any_case_with_separators() -> None:
    from hotline.anchor import parse_digest

    assert parse_digest(":".join(["AB"] * 32), "x") == "ab" * 32
    with pytest.raises(Malformed):
        parse_digest("zz" * 32, "x")


def test_a_deeply_nested_file_is_a_failure_line_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000)
    result = CliRunner().invoke(main, ["verify", str(path)])
    assert result.exit_code == 4, result.output
    assert "is not a transcript (not JSON)" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
