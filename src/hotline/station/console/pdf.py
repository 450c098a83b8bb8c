"""A message's record as PDF (reportlab), in a font that has Cyrillic.

The font is DejaVu Sans from the system (Debian: ``fonts-dejavu-core``), or from the
directory ``HOTLINE_FONT_DIR`` names; without one the PDF is refused with a clear
error (the print view still works). Every text in the record is the sender's or the
catalogs': it is escaped before reportlab reads its markup.
"""

from __future__ import annotations

import io
import os
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from ...errors import Unavailable
from .record import Column, Record

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu",)
REGULAR, BOLD = "DejaVuSans.ttf", "DejaVuSans-Bold.ttf"


@cache
def _fonts() -> tuple[str, str]:
    dirs = [os.environ["HOTLINE_FONT_DIR"]] if os.environ.get("HOTLINE_FONT_DIR") else []
    for d in [*dirs, *FONT_DIRS]:
        regular, bold = Path(d) / REGULAR, Path(d) / BOLD
        if regular.is_file() and bold.is_file():
            pdfmetrics.registerFont(TTFont("HotlineSans", str(regular)))
            pdfmetrics.registerFont(TTFont("HotlineSans-Bold", str(bold)))
            return "HotlineSans", "HotlineSans-Bold"
    raise Unavailable(
        "no Cyrillic font for PDF: install DejaVu Sans (Debian: fonts-dejavu-core) or set "
        "HOTLINE_FONT_DIR to a directory holding DejaVuSans.ttf and DejaVuSans-Bold.ttf"
    )


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def render(record: Record) -> bytes:
    """The record as a PDF document (A4)."""
    regular, bold = _fonts()
    body = ParagraphStyle("body", fontName=regular, fontSize=9.5, leading=12)
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=10, textColor=colors.grey)
    label = ParagraphStyle("label", parent=body, fontName=bold)
    h1 = ParagraphStyle("h1", parent=body, fontName=bold, fontSize=15, leading=19, spaceAfter=6)
    h2 = ParagraphStyle("h2", parent=body, fontName=bold, fontSize=11.5, leading=15, spaceBefore=8)
    grid = TableStyle(
        [
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("GRID", (0, 0), (-1, -1), 0.4, colors.lightgrey),
            ("LEFTPADDING", (0, 0), (-1, -1), 4),
            ("RIGHTPADDING", (0, 0), (-1, -1), 4),
        ]
    )
    width = A4[0] - 36 * mm

    def pairs(rows: list[tuple[str, str]], first: float = 0.3) -> Table:
        table = Table(
            [[_p(k, label), _p(v, body)] for k, v in rows],
            colWidths=[width * first, width * (1 - first)],
        )
        table.setStyle(grid)
        return table

    def column(c: Column) -> list[Paragraph]:
        out = [_p(c.heading, label)]
        if c.title:
            out.append(_p(c.title, label))
        for k, v in c.lines:
            out.append(_p(f"{k}: {v}" if k else v, body))
        if c.note:
            out.append(_p(c.note, small))
        return out

    story: list[object] = [_p(record.title, h1), pairs(record.meta)]
    side = Table(
        [[column(record.reader), column(record.original)]], colWidths=[width / 2, width / 2]
    )
    side.setStyle(grid)
    story += [Spacer(1, 6), side]
    if record.places:
        story.append(_p(record.places_heading, h2))
        for place in record.places:
            line = f"{place['field']}: {place['degrees']} · MGRS {place['mgrs']}"
            if place["radius"]:
                line += f" · {place['radius']}"
            story.append(_p(line, body))
    story += [_p(record.verification_heading, h2), pairs(record.verification)]
    story.append(_p(record.receipts_heading, h2))
    for line in record.receipts or [record.no_receipts]:
        story.append(_p("• " + line, body))
    story += [Spacer(1, 10), _p(record.printed, small)]
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=record.title,
        author=record.printed,
    )
    doc.build(story)
    return out.getvalue()
