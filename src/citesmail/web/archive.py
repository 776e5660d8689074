"""serve's /archive/: the published site (publish/), for centres with no other web host.

The pages are the files `citesmail publish` would write (sent and scheduled campaigns,
never drafts), built from the database and the campaign files, and kept until either
changes: each request compares a fingerprint (the files' sizes and mtimes, the sends'
states and dates) with the one the site was built from, and the site is rebuilt at most
once per MAX_AGE otherwise (what is "to come" moves with the clock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from datetime import UTC, datetime
from pathlib import PurePosixPath

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..config import Settings
from ..db import Database, Send
from ..publish import PartCache, Site, build_site, default_base_url, select_sources

MAX_AGE = 300.0  # seconds
TYPES = {".html": "text/html; charset=utf-8", ".xml": "application/xml; charset=utf-8",
         ".ics": "text/calendar; charset=utf-8"}
CACHE = "public, max-age=300"


class Archive:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings, self.db = settings, db
        self._lock = threading.Lock()
        self._site: Site | None = None
        self._parts = PartCache()  # in memory: a rebuild renders only what changed
        self._built: tuple[Hashable, float] = ((), 0.0)

    def _fingerprint(self) -> Hashable:
        folders = [self.settings.campaigns_dir, self.settings.templates_dir]
        files = tuple(sorted((str(path), path.stat().st_mtime_ns, path.stat().st_size)
                             for folder in folders if folder.is_dir()
                             for path in folder.rglob("*") if path.is_file()))
        query = select(Send.campaign, Send.state, Send.started_at, Send.scheduled_at)
        with self.db.session(write=False) as session:
            sends = tuple(sorted(tuple(map(str, row)) for row in session.execute(query)))
        return files, sends

    def site(self) -> Site:
        with self._lock:  # one build at a time; the others wait for it
            fingerprint, built_at = self._fingerprint(), time.monotonic()
            if self._site is None or fingerprint != self._built[0] \
                    or built_at - self._built[1] > MAX_AGE:
                sources = select_sources(self.settings, self.db)
                self._site = build_site(sources, self.settings,
                                        default_base_url(self.settings), datetime.now(UTC),
                                        self._parts)
                self._built = (fingerprint, built_at)
            return self._site

    def answer(self, path: str) -> Response:
        files = self.site().files
        if path == "" or path.endswith("/"):
            path += "index.html"
        data = files.get(path)
        if data is None:
            if f"{path}/index.html" in files:  # a page's folder, without its slash
                return RedirectResponse(f"/archive/{path}/", status_code=308)
            return Response("not found", status_code=404, media_type="text/plain")
        media_type = TYPES.get(PurePosixPath(path).suffix, "application/octet-stream")
        return Response(data, media_type=media_type, headers={"cache-control": CACHE})


def archive_routes(archive: Archive) -> list[Route]:
    async def page(request: Request) -> Response:
        return await run_in_threadpool(archive.answer, request.path_params.get("path", ""))

    async def top(request: Request) -> Response:
        return RedirectResponse("/archive/", status_code=308)

    return [Route("/archive", top, methods=["GET", "HEAD"]),
            Route("/archive/{path:path}", page, methods=["GET", "HEAD"])]
