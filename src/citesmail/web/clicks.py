"""The measurement routes of `citesmail serve`: /c/<token> (a counted link: the click is
made durable in the intake, then answered 303 to the link's address) and /o/<token> (a
consenting contact's pixel). A token that does not verify, or names no stored link, gets
a 4xx without any Location: nothing here redirects anywhere a send did not store."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..db import Database
from ..intake import CLICK, OPEN, GroupedAppends, IntakeError
from ..tracking.automated import BurstWindow, scanner_agent
from ..tracking.links import link_target, send_campaign
from ..tracking.tokens import read_click, read_open

RETRY_AFTER = "60"
# A transparent 1×1 GIF.
PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00"
         b"\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
NO_STORE = {"Cache-Control": "no-store, max-age=0", "Referrer-Policy": "no-referrer"}
_CACHED = 10_000  # links kept in memory (a link's address never changes once sent)


def _refused(status: int = 404) -> Response:
    return Response("This link is not valid.\n", status_code=status,
                    media_type="text/plain; charset=utf-8", headers=NO_STORE)


def _busy() -> Response:
    return Response("Please try again in a minute.\n", status_code=503,
                    media_type="text/plain; charset=utf-8",
                    headers={**NO_STORE, "Retry-After": RETRY_AFTER})


class Measures:
    def __init__(self, db: Database, secret: str, intake: Path,
                 appended: Callable[[], object]) -> None:
        self.db, self.secret, self.appended = db, secret, appended
        self.intake = GroupedAppends(intake)
        self.burst = BurstWindow()
        self._links: dict[tuple[int, int], tuple[str, str]] = {}
        self._campaigns: dict[int, str] = {}
        self._lock = threading.Lock()

    def _target(self, send_id: int, number: int) -> tuple[str, str] | None:
        key = (send_id, number)
        found = self._links.get(key)
        if found is None:
            with self.db.session(write=False) as session:
                found = link_target(session, send_id, number)
            if found is not None:
                with self._lock:
                    if len(self._links) >= _CACHED:
                        self._links.clear()
                    self._links[key] = found
        return found

    def click(self, token: str, head: bool, agent: str, client: str) -> Response:
        named = read_click(self.secret, token)
        target = self._target(named.send_id, named.number) if named else None
        if named is None or target is None:
            return _refused()
        campaign, url = target
        automated = head or scanner_agent(agent) or \
            self.burst.another_link(client, campaign, named.number)
        try:  # durable first, then answered: a click is never lost
            self.intake.append(named.contact_id or 0, CLICK, campaign=campaign,
                               number=named.number, automated=automated)
        except IntakeError as exc:
            _log(f"intake: {exc.problems[0].message}: click answered 503")
            return _busy()
        self.appended()
        return Response(status_code=303, headers={**NO_STORE, "Location": url})

    def opened(self, token: str) -> Response:
        named = read_open(self.secret, token)
        campaign = self._campaign(named[0]) if named else None
        if named is None or campaign is None:
            return _refused()
        try:
            self.intake.append(named[1], OPEN, campaign=campaign)
        except IntakeError as exc:
            _log(f"intake: {exc.problems[0].message}: open not counted")
        else:
            self.appended()
        return Response(PIXEL, media_type="image/gif", headers=NO_STORE)

    def _campaign(self, send_id: int) -> str | None:
        found = self._campaigns.get(send_id)
        if found is None:
            with self.db.session(write=False) as session:
                found = send_campaign(session, send_id)
            if found is not None:
                self._campaigns[send_id] = found
        return found


def measure_routes(measures: Measures) -> list[Route]:
    async def click(request: Request) -> Response:
        client = request.client.host if request.client else ""
        return await run_in_threadpool(measures.click, request.path_params["token"],
                                       request.method == "HEAD",
                                       request.headers.get("user-agent", ""), client)

    async def opened(request: Request) -> Response:
        return await run_in_threadpool(measures.opened, request.path_params["token"])

    return [Route("/c/{token}", click, methods=["GET", "HEAD"]),
            Route("/o/{token}", opened, methods=["GET"])]


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
