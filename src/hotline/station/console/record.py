"""A message's record, as a duty officer files it: the message in the reader's
language beside the original, its verification, and its receipts.

``build`` gathers it (in the database thread); ``record.html`` prints it from a
browser and ``pdf.render`` makes the PDF, from the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ... import body as body_mod
from ...envelope import Precedence
from ...errors import Malformed
from ...i18n import t, when
from ...notes import b64
from ..api import view_body
from ..core import StationCore
from ..situation import places_of
from .places import place_view


@dataclass(frozen=True)
class Column:
    """One side of the record: a language and the message's lines in it."""

    lang: str
    heading: str
    title: str
    lines: list[tuple[str, str]]  # label, value (a text message: one line, no label)
    note: str | None


@dataclass(frozen=True)
class Record:
    title: str
    meta: list[tuple[str, str]]
    reader: Column
    original: Column
    verification: list[tuple[str, str]]
    receipts: list[str]
    places: list[dict[str, Any]]
    printed: str
    places_heading: str
    verification_heading: str
    receipts_heading: str
    no_receipts: str


LANGUAGE_NAMES = {"en": "English", "ru": "Русский", "uk": "Українська"}


def _column(view: dict[str, Any], lang: str, heading: str, original: bool) -> Column:
    if view["kind"] == "form":
        return Column(lang, heading, view["title"], list(view["fields"]), view.get("note"))
    if view["kind"] == "text":
        if original:
            return Column(view["lang"], heading, "", [("", view["original"])], None)
        text = view["translation"] or view["original"]
        return Column(lang, heading, "", [("", text)], view.get("note"))
    return Column(lang, heading, "", [("", view.get("summary", ""))], None)


def build(core: StationCore, channel: str, index: int, lang: str, operator: str) -> Record:
    row = core.store.message(channel, index)
    if row is None:
        raise Malformed(f"no message {index} in {channel}", field="index")
    content = body_mod.parse_body(row.body.encode())
    mine = view_body(content, lang)
    source = (
        content.lang
        if isinstance(content, body_mod.Text)
        else core.roster.parties[row.party].language
    )
    theirs = view_body(content, source)

    def heading(code: str) -> str:
        return LANGUAGE_NAMES.get(code, code)

    reader = _column(mine, lang, t(lang, "ui.in_language", language=heading(lang)), False)
    original = _column(theirs, source, f"{t(lang, 'ui.original_text')} · {heading(source)}", True)
    precedence = Precedence(row.precedence).name
    meta = [
        (t(lang, "ui.precedence"), t(lang, "precedence." + precedence)),
        (t(lang, "ui.channel"), row.channel),
        (t(lang, "ui.from"), row.sender),
        (t(lang, "ui.time"), when(row.relay_ms, lang)),
        (t(lang, "ui.sender_time"), when(row.created_ms, lang)),
    ]
    verified = core.verified(channel)
    covered = verified is not None and verified.size > index
    verification = [
        (
            t(lang, "ui.signature"),
            t(lang, "ui.signed_by", station=row.sender, party=row.party, seq=row.seq),
        ),
        (t(lang, "ui.log_index"), str(index)),
        (t(lang, "ui.entry_hash"), row.hash.hex()),
    ]
    if verified is not None and covered:
        names = [s.name for s in verified.note.signatures]
        verification.append(
            (
                t(lang, "ui.checkpoint"),
                f"{verified.origin}: "
                + t(lang, "ui.checkpoint_detail", size=verified.size, root=b64(verified.root))
                + "; "
                + t(lang, "ui.log_signed_by", who=", ".join(n for n in names if "/" not in n)),
            )
        )
        # Witnesses are stations (party/name); the log's own key is the relay's.
        witnesses = sorted(n for n in names if "/" in n)
        verification.append((t(lang, "ui.cosignatures"), ", ".join(witnesses) or "-"))
    else:
        verification.append((t(lang, "ui.checkpoint"), t(lang, "ui.not_in_checkpoint")))
    receipts = [
        t(
            lang,
            "ui.receipt_line",
            status=t(lang, "state." + r.status),
            who=f"{r.operator} ({r.station})" if r.operator else r.station,
            index=r.index,
            time=when(r.relay_ms, lang),
        )
        + (f": «{r.reply}»" if r.reply else "")
        for r in core.store.receipts_of(channel, index)
    ]
    state = core.message_state(channel, index)
    places = [place_view(p, state, lang) for p in places_of(row)]
    printed = t(
        lang, "ui.printed", time=when(core.now_ms(), lang), operator=operator, station=core.ident
    )
    return Record(
        t(lang, "ui.record_title", channel=channel, index=index),
        meta,
        reader,
        original,
        verification,
        receipts,
        places,
        printed,
        t(lang, "ui.where"),
        t(lang, "ui.verification"),
        t(lang, "ui.receipts"),
        t(lang, "ui.no_receipts"),
    )
