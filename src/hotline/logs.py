"""How hotline processes log: plain text lines, or JSON lines a collector can parse.

``hotline relay serve``, ``hotline station serve`` and ``hotline demo`` take
``--log-format text|json`` (or ``HOTLINE_LOG_FORMAT``); ``HOTLINE_LOG`` sets the level.
A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, and
the fields a call passed with ``extra=``. Callers log identifiers and error codes,
never bodies or secrets; this module adds nothing of its own.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

# What every LogRecord carries; anything else on a record came with ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra field that is not JSON (a path, an enum) is shown as text.
        return json.dumps(out, ensure_ascii=False, default=str)


def start(fmt: LogFormat = LogFormat.TEXT, level: str | None = None) -> None:
    """Log to stderr in ``fmt`` at ``level`` (default ``$HOTLINE_LOG``, else INFO).

    Like ``logging.basicConfig``, nothing changes if the root logger has handlers already
    (a test's capture, say)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if fmt is LogFormat.JSON else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=level or os.environ.get("HOTLINE_LOG", "INFO"), handlers=[handler])
    # The station client's every request (the demo's scenario) is not news to an operator.
    logging.getLogger("httpx").setLevel(logging.WARNING)
