"""What every response of citesmail's web apps carries, and what no request may exceed."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
     b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
MAX_BODY = 16 * 1024


Headers = list[tuple[bytes, bytes]]


class SecurityHeaders:
    """Adds the security headers (those a response sets itself win); refuses request
    bodies over MAX_BODY with 413; answers an exception with a 500 that has them too."""

    def __init__(self, app: ASGIApp, headers: Headers = HEADERS) -> None:
        self.app, self.headers = app, headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY:
            await _respond(send, 413, b"request too large", self.headers)
            return

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = _with_defaults(message.get("headers", []), self.headers)
            await send(message)

        try:
            await self.app(scope, _limited(receive), send_with_headers)
        except _TooLarge:
            await _respond(send, 413, b"request too large", self.headers)
        except Exception:
            # Starlette's own 500 is sent from outside every middleware, without these
            # headers: answer here, then let the server log the error.
            if not started:
                await _respond(send, 500, b"internal server error", self.headers)
            raise


def _with_defaults(headers: Headers, defaults: Headers) -> Headers:
    own = {name.lower() for name, _ in headers}
    return [*headers, *((name, value) for name, value in defaults if name not in own)]


class _TooLarge(Exception):
    pass


def _limited(receive: Receive) -> Receive:
    """A body longer than announced (chunked, say) is refused past MAX_BODY."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise _TooLarge
        return message

    return wrapped


async def _respond(send: Send, status: int, body: bytes, headers: Headers) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), *headers]})
    await send({"type": "http.response.body", "body": body})
