"""A client of a station's local API, for the CLI, the demo and the tests.

It finds the API's address and token in the station directory (``station.toml``,
``api-token``), speaks JSON, and turns every error answer back into the hotline
error the station raised (``errors.from_dict``); a station that does not answer
is ``Unavailable``. Answers are the API's JSON documents, as documented in
docs/OPERATIONS.md ("Local API").
"""

from __future__ import annotations

import ssl
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from ..errors import HotlineError, Unavailable, from_dict
from ..home import station_config

Json = dict[str, Any]

# The station answers a long poll after at most 25 s; leave it room.
WAIT_TIMEOUT = 40.0
EXPORT_TIMEOUT = 300.0


class StationClient:
    """Calls to one station's local API. Close it (or use ``with``) when done."""

    def __init__(
        self, url: str, token: str, timeout: float = 30.0, verify: ssl.SSLContext | bool = True
    ) -> None:
        self.url = url
        self.http = httpx.Client(
            base_url=url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"},
            verify=verify,
        )

    @classmethod
    def for_dir(cls, directory: Path, timeout: float = 30.0) -> StationClient:
        """The client of the station whose directory is ``directory``."""
        cfg = station_config(directory)
        # Over TLS, trust the station's own certificate (often self-signed).
        verify = (
            ssl.create_default_context(cafile=str(cfg.api_tls_cert)) if cfg.api_tls_cert else True
        )
        return cls(cfg.api_url, cfg.token(), timeout, verify)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> StationClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the API -----------------------------------------------------------------------

    def status(self) -> Json:
        """Link, outbox counts, channel cursors, link board, open alarms."""
        return dict(self._json("GET", "/api/status"))

    def send(
        self,
        channel: str,
        *,
        text: str | None = None,
        body: Json | None = None,
        precedence: str = "ROUTINE",
        lang: str | None = None,
    ) -> Json:
        """Queue free ``text`` (in ``lang``) or a whole ``body``; the answer names its seq."""
        payload: Json = {"channel": channel, "precedence": precedence.upper()}
        if text is not None:
            payload["text"] = text
            if lang:
                payload["lang"] = lang
        if body is not None:
            payload["body"] = body
        headers = {"Accept-Language": lang} if lang else {}
        return dict(self._json("POST", "/api/send", json=payload, headers=headers))

    def inbox(
        self, channel: str | None = None, limit: int | None = None, lang: str | None = None
    ) -> list[Json]:
        """Messages received, by precedence then time."""
        params: dict[str, Any] = {}
        if channel:
            params["channel"] = channel
        if limit is not None:
            params["limit"] = limit
        if lang:
            params["lang"] = lang
        return list(self._json("GET", "/api/inbox", params=params))

    def message(self, channel: str, index: int, lang: str | None = None) -> Json:
        """One message of the log, with its view in ``lang`` and its state per party."""
        params = {"lang": lang} if lang else {}
        return dict(self._json("GET", f"/api/messages/{channel}/{index}", params=params))

    def ack(self, channel: str, index: int, operator: str, reply: str | None = None) -> Json:
        """Acknowledge message ``index`` of ``channel`` as ``operator``."""
        data = {"channel": channel, "index": index, "operator": operator, "reply": reply}
        return dict(self._json("POST", "/api/ack", json=data))

    def sent(self, channel: str | None = None) -> list[Json]:
        """The messages this station sent, each with its state per recipient party."""
        params = {"channel": channel} if channel else {}
        return list(self._json("GET", "/api/sent", params=params))

    def sent_message(self, channel: str, seq: int) -> Json:
        """The sent message ``seq`` of ``channel`` (as `send` answered it)."""
        return dict(self._json("GET", f"/api/sent/{channel}/{seq}"))

    def alarms(self, everything: bool = False) -> list[Json]:
        """Open alarms, newest first (with ``everything``, cleared ones too)."""
        params = {"all": "1"} if everything else {}
        return list(self._json("GET", "/api/alarms", params=params))

    def clear_alarm(self, alarm_id: int, operator: str) -> Json:
        return dict(
            self._json("POST", f"/api/alarms/{alarm_id}/clear", json={"operator": operator})
        )

    def export(self, channel: str, bodies: bool = False) -> bytes:
        """The channel's transcript, as the bytes to write to a file."""
        params = {"bodies": "1"} if bodies else {}
        return self._call(
            "GET", f"/api/export/{channel}", params=params, timeout=EXPORT_TIMEOUT
        ).content

    def wait(self, version: int = -1) -> int:
        """Block until anything changed after ``version`` (or about 25 s); the new version."""
        out = self._json("GET", "/api/wait", params={"version": version}, timeout=WAIT_TIMEOUT)
        return int(out["version"])

    # --- transport ---------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(method, path, **kwargs).json()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"station at {self.url} is not answering ({exc}); is it running?"
            ) from exc
        if resp.status_code >= 400:
            raise _error_of(resp)
        return resp


def _error_of(resp: httpx.Response) -> HotlineError:
    try:
        error = resp.json().get("error")
    except ValueError:
        error = None
    if not isinstance(error, dict):
        return HotlineError(f"station answered {resp.status_code}: {resp.text[:200]}")
    return from_dict(error)
