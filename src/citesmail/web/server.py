"""How `citesmail serve` runs the public app under uvicorn: a deadline for each request's
head, no connection cap that idle sockets can fill, and no link tokens in the access log."""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

# Seconds a client has to send a request line and its headers. A reverse proxy sends them
# at once; only a slow or hostile client needs more than a second or two.
HEAD_TIMEOUT = 10.0


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head.

    uvicorn only times out idle connections *between* requests (timeout_keep_alive): a
    client that sends half a request line and then nothing holds its connection for ever,
    and with `limit_concurrency` a few hundred of those made every real request a 503.
    Here a connection that has not finished a request's head `head_timeout` seconds after
    it opened (or after the first bytes of a following request) is closed.
    """

    head_timeout: float = HEAD_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def _watch_head(self) -> None:
        """Arm the deadline while a request's head or body is awaited (h11: the client
        is IDLE or SEND_BODY), cancel it once the whole request is in (it then belongs to
        the app). The bodies citesmail takes are small (16 KB at most): a body that
        trickles in byte by byte is as much an attack as a head that does."""
        awaiting_head = self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and \
            not self.transport.is_closing()
        if awaiting_head and self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.head_timeout, self._head_too_slow)
        elif not awaiting_head:
            self._cancel_head_deadline()

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and \
                not self.transport.is_closing():
            self.transport.close()


def protocol_with_head_timeout(seconds: float) -> type[HeadDeadlineProtocol]:
    """uvicorn builds the protocol itself, so the timeout travels as a class attribute."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"head_timeout": seconds})


# The token in /u/<token>, /v/<token>/event.ics, /confirm/<token>...: whoever reads the
# log could use it. (/s/<list> names a list, no token: it stays.)
_TOKEN_IN_PATH = re.compile(r"^(/(?:[a-rt-z]|confirm))/[^/?]+")


class RedactTokens(logging.Filter):
    """Replaces the token of a link path in uvicorn's access log lines by an ellipsis."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = _TOKEN_IN_PATH.sub(r"\1/…", args[2])
            record.args = (*args[:2], path, *args[3:])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's own logging set-up, with RedactTokens on the access log."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {"()": RedactTokens}
    config["loggers"]["uvicorn.access"]["filters"] = ["redact_tokens"]
    return config


def run_public_app(app: ASGIApp, host: str, port: int, head_timeout: float) -> None:
    # No limit_concurrency: uvicorn counts open connections against it, idle ones too,
    # so it let slow clients shut everyone else out; the head deadline bounds them.
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False,
                proxy_headers=True, http=protocol_with_head_timeout(head_timeout),
                log_config=log_config())
