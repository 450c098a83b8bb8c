"""`hotline verify`: check a transcript offline, with no network and no keys.

What it trusts is given apart from the file: ``--roster`` (the signed roster as
distributed), ``--roster-hash`` or ``--root PARTY=FINGERPRINT``. Without any, it can say
only that the transcript is consistent, and exits 7.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import HotlineError, Malformed
from . import render
from .base import EXIT_NOT_ANCHORED, EXIT_VERIFICATION_FAILED, fail, json_option, main
from .specs import party_keys

ROOT_FORM = "PARTY=FINGERPRINT (or PARTY=PUBKEY_OR_FILE, e.g. us=us/party.pub)"


def root_pin(spec: str) -> tuple[str, str]:
    """``us=<64 hex>`` or ``us=us/party.pub`` -> ("us", fingerprint)."""
    from ..anchor import parse_digest, root_fingerprint
    from ..hybrid import HybridRoot
    from ..notes import NoteVerifier

    party, eq, value = spec.partition("=")
    if not eq or not party or not value:
        raise Malformed(f"--root {spec!r}: write it as {ROOT_FORM}", field="root")
    try:
        return party, parse_digest(value, "fingerprint")
    except Malformed:
        pass
    try:
        keys = party_keys(value)
    except Malformed as exc:
        raise Malformed(
            f"--root {spec!r}: {value!r} is neither a fingerprint (64 hex digits) nor a "
            f"public key or key file: {exc.message}",
            field="root",
        ) from exc
    ed = keys["root"]
    key: NoteVerifier = ed
    if "pq_root" in keys:
        key = HybridRoot(ed.name, ed.public, keys["pq_root"])
    if key.name != party:
        raise Malformed(f"--root {spec!r}: that key is {key.name}'s, not {party}'s", field="root")
    return party, root_fingerprint(key)


@main.command()
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--roster",
    "roster_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Trust only this roster: the signed roster note as distributed to the parties.",
)
@click.option(
    "--roster-hash",
    metavar="HEX",
    help="Trust only the roster with this hash (SHA-256 of the roster note, as reported).",
)
@click.option(
    "--root",
    "roots",
    multiple=True,
    metavar="PARTY=FINGERPRINT",
    help="Trust the roster signed by this party root key (its fingerprint, or the key or "
    "party.pub file itself). Repeatable.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Processes that check signatures (0: one per core; 1: no pool). The report is "
    "the same with any number.",
)
@json_option
def verify(
    path: Path,
    roster_file: Path | None,
    roster_hash: str | None,
    roots: tuple[str, ...],
    workers: int,
    as_json: bool,
) -> None:
    """Verify a transcript offline (no network, no keys).

    Exit 0: every check holds against the trust anchor; 4: a check failed (or the
    transcript's roster is not the pinned one; with several relays the verdict says
    whether the channel's record is intact and which relay is faulty); 7: consistent,
    but no trust anchor was given, so anyone could have made it.
    """
    from .. import anchor as anchor_mod
    from .. import parallel_verify, transcript
    from ..roster import open_roster

    try:
        rosters = []
        if roster_file is not None:
            try:
                rosters.append(anchor_mod.roster_hash(open_roster(roster_file.read_bytes())))
            except HotlineError as exc:
                raise type(exc)(f"--roster {roster_file}: {exc.message}") from exc
        if roster_hash is not None:
            rosters.append(anchor_mod.parse_digest(roster_hash, "--roster-hash"))
        anchor = anchor_mod.Anchor(tuple(rosters), tuple(root_pin(r) for r in roots))
    except HotlineError as exc:
        fail(exc, as_json)
    try:
        doc = transcript.loads(path.read_bytes())
    except Malformed as exc:
        report = transcript.Report("?")
        report.fail(None, Malformed(f"{path} is not a transcript (not JSON): {exc.message}"))
    else:
        report = transcript.verify(doc, anchor, parallel_verify.workers_for(doc, workers))
    click.echo(render.verify_report(report, as_json))
    if not report.ok:
        sys.exit(EXIT_VERIFICATION_FAILED)
    sys.exit(0 if report.anchored else EXIT_NOT_ANCHORED)
