"""A client of a station's local API, for the CLI, the demo and the tests.

It finds the API's address and token in the station directory (``station.toml``,
``api-token``), speaks JSON, and turns every error answer back into the hotline
error the station raised (``errors.from_dict``); a station that does not answer
is ``Unavailable``. Answers are the API's JSON documents, as documented in
docs/OPERATIONS.md ("Local API"). Lists come a page at a time (``*_page``: items and
the cursor of the next page) or whole (every page, followed to the end).
"""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import Callable, Iterator
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
PAGE = 1000  # items per page when following every page


def new_key() -> str:
    """A fresh idempotency key for one send."""
    return secrets.token_urlsafe(18)


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
        key: str | None = None,
        retry_for: float = 0.0,
    ) -> Json:
        """Queue free ``text`` (in ``lang``) or a whole ``body``; the answer names its seq.

        With an idempotency ``key``, a send cut before its answer (the connection reset,
        the station restarting) is retried with the same key for up to ``retry_for``
        seconds: the station queues it once and answers ``repeated`` to a retry. A
        station that does not answer the first attempt at all is not retried."""
        payload: Json = {"channel": channel, "precedence": precedence.upper()}
        if text is not None:
            payload["text"] = text
            if lang:
                payload["lang"] = lang
        if body is not None:
            payload["body"] = body
        headers = {"Accept-Language": lang} if lang else {}
        if key is not None:
            headers["Idempotency-Key"] = key
        deadline, pause, reached = time.monotonic() + retry_for, 0.2, False
        while True:
            try:
                resp = self.http.request("POST", "/api/send", json=payload, headers=headers)
            except httpx.HTTPError as exc:
                # Reached once (not a refused first connection): the send may be stored.
                reached = reached or not isinstance(exc, httpx.ConnectError)
                if key is None or not reached or time.monotonic() + pause > deadline:
                    raise _unavailable(self.url, exc) from exc
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            if resp.status_code >= 400:
                raise _error_of(resp)
            return dict(resp.json())

    def inbox_page(
        self,
        channel: str | None = None,
        limit: int | None = None,
        after: str | None = None,
        lang: str | None = None,
    ) -> Json:
        """A page of the messages received, by precedence then time: ``items``, and
        ``next`` (the ``after`` of the next page; None on the last)."""
        params: dict[str, Any] = {"channel": channel, "limit": limit, "after": after}
        if lang:
            params["lang"] = lang
        return dict(self._json("GET", "/api/inbox", params=_given(params)))

    def inbox(self, channel: str | None = None, lang: str | None = None) -> list[Json]:
        """Every message received, by precedence then time (every page)."""
        return list(self._every(self.inbox_page, channel=channel, lang=lang))

    def message(self, channel: str, index: int, lang: str | None = None) -> Json:
        """One message of the log, with its view in ``lang`` and its state per party."""
        params = {"lang": lang} if lang else {}
        return dict(self._json("GET", f"/api/messages/{channel}/{index}", params=params))

    def rotate(self) -> Json:
        """Have the station switch to the key now in its directory (`station rotate`)."""
        return dict(self._json("POST", "/api/rotate"))

    def key_events(self) -> Json:
        """Every key event this station submitted, per relay: ``events``, each logged or
        ``pending`` (with the relay's last refusal)."""
        return dict(self._json("GET", "/api/key-events"))

    def submit_key_event(self, kind: str, data: bytes) -> Json:
        """Owe a key event (a revocation note) to every relay; its ``hash``."""
        payload = {"kind": kind, "data": data.decode("utf-8")}
        return dict(self._json("POST", "/api/key-events", json=payload))

    def ack(self, channel: str, index: int, operator: str, reply: str | None = None) -> Json:
        """Acknowledge message ``index`` of ``channel`` as ``operator``."""
        data = {"channel": channel, "index": index, "operator": operator, "reply": reply}
        return dict(self._json("POST", "/api/ack", json=data))

    def sent_page(
        self, channel: str | None = None, limit: int | None = None, after: str | None = None
    ) -> Json:
        """A page of the messages this station sent (by channel, then seq), each with its
        key, excerpt and state per recipient party: ``items`` and ``next``."""
        params = _given({"channel": channel, "limit": limit, "after": after})
        return dict(self._json("GET", "/api/sent", params=params))

    def sent(self, channel: str | None = None) -> list[Json]:
        """Every message this station sent, each with its state per recipient party."""
        return list(self._every(self.sent_page, channel=channel))

    def sent_message(self, channel: str, seq: int) -> Json:
        """The sent message ``seq`` of ``channel`` (as `send` answered it)."""
        return dict(self._json("GET", f"/api/sent/{channel}/{seq}"))

    def alarms_page(
        self,
        everything: bool = False,
        limit: int | None = None,
        after: str | None = None,
        lang: str | None = None,
    ) -> Json:
        """A page of open alarms, newest first (with ``everything``, cleared ones too),
        each ``message`` in ``lang`` (English unless given)."""
        params = _given(
            {"all": "1" if everything else None, "limit": limit, "after": after, "lang": lang}
        )
        return dict(self._json("GET", "/api/alarms", params=params))

    def alarms(self, everything: bool = False, lang: str | None = None) -> list[Json]:
        """Every open alarm, newest first (with ``everything``, cleared ones too)."""
        return list(self._every(self.alarms_page, everything=everything, lang=lang))

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

    def received(
        self,
        since: str | None = None,
        timeout: float | None = None,
        channel: str | None = None,
        lang: str | None = None,
    ) -> Json:
        """New messages: ``items`` received after ``since`` (a cursor an earlier answer
        gave), in the order the station took them in, as soon as there is one, or none
        after ``timeout`` seconds (at most 25); and ``since`` for the next call. Without
        ``since``: no items, and the cursor to start from (now)."""
        params = {"since": since, "timeout": timeout, "channel": channel, "lang": lang}
        return dict(self._json("GET", "/api/received", params=_given(params), timeout=WAIT_TIMEOUT))

    # --- transport ---------------------------------------------------------------------

    def _every(self, page: Callable[..., Json], **kwargs: Any) -> Iterator[Json]:
        """The items of every page of a list, following ``next`` to the end."""
        after = None
        while True:
            got = page(limit=PAGE, after=after, **kwargs)
            yield from got["items"]
            after = got["next"]
            if after is None:
                return

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(method, path, **kwargs).json()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise _unavailable(self.url, exc) from exc
        if resp.status_code >= 400:
            raise _error_of(resp)
        return resp


def _unavailable(url: str, exc: Exception) -> Unavailable:
    return Unavailable(f"station at {url} is not answering ({exc}); is it running?")


def _given(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _error_of(resp: httpx.Response) -> HotlineError:
    try:
        error = resp.json().get("error")
    except ValueError:
        error = None
    if not isinstance(error, dict):
        return HotlineError(f"station answered {resp.status_code}: {resp.text[:200]}")
    return from_dict(error)
