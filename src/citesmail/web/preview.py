"""The preview app (`citesmail preview`, 127.0.0.1 only): every campaign rendered through
the same path as a real send, with live reload when a campaign or template is saved."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..audience.recipients import active_addresses, find_recipient, first_recipient
from ..checks import CampaignCheck, check_campaign, check_settings
from ..config import Settings
from ..db import Database, open_database
from ..delivery import audience_of, send_tests
from ..errors import CitesmailError
from ..message import (
    SAMPLE_RECIPIENT,
    Audience,
    MessageTemplate,
    Recipient,
    personalize,
    recipient_from_text,
)
from ..render import RenderedCampaign
from ..render.lint import GMAIL_CLIP_BYTES
from .i18n import studio_language
from .live import send_changes
from .pages import render_studio_page, studio_pages
from .report_page import studio_report
from .security import HEADERS, SecurityHeaders
from .stages import Stage, stage_of
from .studio import StudioPages

# The picker's own choices, besides the contacts' addresses.
SAMPLE, NO_FIRST_NAME = ":sample", ":no-first-name"
NAMELESS = Recipient(email="lecteur@example.org")  # greeted with the default words
# The studio's one script: reload when a file changes; show a send's numbers as they
# move (a page that follows one send, data-follow, reloads when its numbers change).
_RELOAD_JS = " ".join(line.strip() for line in """
new EventSource('/events').onmessage = () => location.reload();
const live = document.querySelectorAll('[data-live]');
if (live.length) new EventSource('/events/sends').onmessage = (event) => {
  const shown = JSON.parse(event.data);
  for (const element of live) {
    const text = shown[element.dataset.live];
    if (text === undefined || element.textContent === text) continue;
    if ('follow' in element.dataset) location.reload();
    element.textContent = text;
  }
};""".strip().splitlines())
_RELOAD_HASH = base64.b64encode(hashlib.sha256(_RELOAD_JS.encode()).digest()).decode()
# The preview's own pages: only their reload script runs, and no other site frames them.
PREVIEW_HEADERS = [
    (b"content-security-policy",
     f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{_RELOAD_HASH}'; "
     "connect-src 'self'; frame-src 'self'; img-src 'self' data:; form-action 'self'; "
     "frame-ancestors 'none'; base-uri 'none'".encode()),
    *((name, value) for name, value in HEADERS if name != b"content-security-policy"),
]
# The email itself is shown in frames of the preview's pages, and only there; it runs
# nothing, and loads its images and web fonts as a mail client would.
EMAIL_IN_FRAME_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline' https:; "
                               "font-src https: data:; img-src https: http: data:; "
                               "form-action 'none'; frame-ancestors 'self'; base-uri 'none'",
    "x-frame-options": "SAMEORIGIN",
}


@dataclass(frozen=True)
class _Row:
    """A campaign in the list of campaigns."""

    slug: str
    found: CampaignCheck
    stage: Stage

    @property
    def url(self) -> str:
        return quote(self.slug)


class PreviewApp:
    def __init__(self, settings: Settings, database_url: str | None) -> None:
        self.settings = settings
        self.database_url = database_url
        # Another web page must not make the browser send tests through this server.
        self.form_token = secrets.token_urlsafe(16)
        self.lang = studio_language(settings)

    def page(self, name: str, status: int = 200, **context: object) -> HTMLResponse:
        """One of the studio's pages, with the script its CSP lets run."""
        return HTMLResponse(render_studio_page(self.lang, f"preview/{name}",
                                               reload_script=Markup(_RELOAD_JS), **context),
                            status_code=status)

    def stage_labels(self, stages: dict[str, Stage]) -> dict[str, str]:
        """Each stage in words, as the campaigns page shows it."""
        words = studio_pages(self.lang).get_template("preview/words.html.j2").module
        return {slug: str(words.stage_label(stage)).strip()  # type: ignore[attr-defined]
                for slug, stage in stages.items()}

    # -- rendering (through the same functions as check, render and send) -------------

    def preview(self, slug: str, database: Database | None = None) -> CampaignCheck:
        """The check of `citesmail check`, then the configuration's own findings."""
        found = check_campaign(self.settings.campaigns_dir / f"{slug}.md", self.settings,
                               database)
        if found.rendered is None:
            return found
        shared = check_settings(self.settings)
        return replace(found, errors=found.errors + shared.errors,
                       warnings=found.warnings + shared.warnings)

    @contextmanager
    def database(self) -> Iterator[Database | None]:
        """The workspace's database for one request, if it has one."""
        if self.database_url is None:
            yield None
            return
        db = open_database(self.database_url)
        try:
            yield db
        finally:
            db.close()

    def audience(self, rendered: RenderedCampaign) -> Audience | None:
        """The campaign's segment, as a send to it would name it in its headers."""
        with self.database() as db:
            return audience_of(db, rendered.campaign.audience)

    def recipient(self, address: str | None, audience: str | None = None,
                  ) -> tuple[Recipient, str]:
        """The contact to preview as, and what to say when it is the sample instead: by
        default the first of the campaign's audience, as a send would begin."""
        if address == SAMPLE:
            return SAMPLE_RECIPIENT, ""
        if address == NO_FIRST_NAME:
            return NAMELESS, ""
        if not address:
            return self.first_of(audience) or SAMPLE_RECIPIENT, ""
        instead = address  # "… is not a contact: shown as the sample recipient"
        with self.database() as db:
            if db is None:
                return SAMPLE_RECIPIENT, instead
            try:
                with db.session(write=False) as session:
                    return find_recipient(session, address), ""
            except CitesmailError:
                return SAMPLE_RECIPIENT, instead

    def first_of(self, audience: str | None) -> Recipient | None:
        if not audience:
            return None
        with self.database() as db:
            if db is None:
                return None
            with db.session(write=False) as session:
                return first_recipient(session, audience)

    def contacts(self, limit: int = 200) -> list[str]:
        with self.database() as db:
            if db is None:
                return []
            with db.session(write=False) as session:
                return active_addresses(session, limit)

    def slugs(self) -> list[str]:
        return sorted(p.stem for p in self.settings.campaigns_dir.glob("*.md"))

    # -- pages ----------------------------------------------------------------------------

    def index(self, request: Request) -> Response:
        with self.database() as db:
            rows = [_Row(slug, self.preview(slug, db), stage_of(db, slug, self.settings.tz))
                    for slug in self.slugs()]
        return self.page("index.html.j2", rows=rows)

    def campaign(self, request: Request) -> Response:
        slug = request.path_params["slug"]
        if slug not in self.slugs():
            return PlainTextResponse("no such campaign", status_code=404)
        with self.database() as db:
            found = self.preview(slug, db)
            stage = stage_of(db, slug, self.settings.tz)
        if found.rendered is None:
            return self.page("broken.html.j2", slug=slug, errors=found.errors)
        address = request.query_params.get("as", "")
        audience = found.rendered.campaign.audience
        recipient, instead = self.recipient(address, audience)
        first = self.first_of(audience)
        parts = personalize(found.rendered, recipient, self.settings)
        return self.page(
            "campaign.html.j2", has_report=stage.has_report,
            campaign=found.rendered.campaign, url=quote(slug),
            query=f"?as={quote(address)}" if address else "", recipient=address,
            contacts=self.contacts(), sender=self.settings.sender.from_,
            size_kb=f"{len(parts.html.encode('utf-8')) / 1024:.0f}",
            clip_kb=GMAIL_CLIP_BYTES // 1024, invitation=bool(found.rendered.calendar),
            errors=found.errors, warnings=found.warnings + found.notes, text=parts.text,
            form_token=self.form_token, instead=instead, audience=audience,
            first=first.email if first is not None else "", sample=SAMPLE,
            no_first_name=NO_FIRST_NAME)

    def report(self, request: Request) -> Response:
        slug = request.path_params["slug"]
        with self.database() as db:
            found = (studio_report(db, slug, self.settings.tz, self.lang)
                     if db is not None else None)
        if found is None:
            return self.page("report.html.j2", status=404, slug=slug, report=None)
        return self.page("report.html.j2", slug=slug, report=found)

    def part(self, request: Request) -> Response:
        slug, kind = request.path_params["slug"], request.path_params["kind"]
        if kind == "test":  # the test send is a form's POST
            return PlainTextResponse("method not allowed: send a test from the form",
                                     status_code=405, headers={"allow": "POST"})
        if kind not in {"html", "text", "eml", "ics"}:
            return PlainTextResponse("not found", status_code=404)
        found = self.preview(slug) if slug in self.slugs() else CampaignCheck()
        if found.rendered is None:
            return PlainTextResponse("\n".join(str(p) for p in found.errors) or "not found",
                                     status_code=404)
        if kind == "ics":
            if not found.rendered.calendar:
                return PlainTextResponse("no invitation: not an event", status_code=404)
            return Response(found.rendered.calendar, media_type="text/calendar", headers={
                "content-disposition": f'attachment; filename="{slug}.ics"'})
        recipient = self.recipient(request.query_params.get("as"),
                                   found.rendered.campaign.audience)[0]
        if kind == "eml":
            data = MessageTemplate(found.rendered, self.settings,
                                   audience=self.audience(found.rendered)).build(recipient)
            return Response(data, media_type="message/rfc822", headers={
                "content-disposition": f'attachment; filename="{slug}.eml"'})
        parts = personalize(found.rendered, recipient, self.settings)
        if kind == "html":
            return HTMLResponse(parts.html, headers=EMAIL_IN_FRAME_HEADERS)
        return PlainTextResponse(parts.text)

    def send_test(self, slug: str, address: str, token: str) -> Response:
        if not secrets.compare_digest(token, self.form_token):
            return PlainTextResponse("use the form of the preview page", status_code=403)
        if slug not in self.slugs():
            return PlainTextResponse("no such campaign", status_code=404)
        found = self.preview(slug)
        if found.rendered is None:
            return PlainTextResponse("the campaign has errors", status_code=400)
        try:
            recipient = recipient_from_text(address)
            [(to, outcome)] = send_tests(self.settings, found.rendered, [recipient],
                                         audience=self.audience(found.rendered))
        except (ValueError, CitesmailError) as exc:
            return self.page("test.html.j2", error=str(exc), url=quote(slug))
        return self.page("test.html.j2", error=None, to=to, outcome=outcome, url=quote(slug))


async def _changes(folders: list[Path]) -> AsyncIterator[str]:
    from watchfiles import awatch

    watched = [str(f) for f in folders if f.is_dir()]
    yield ": connected\n\n"
    async for _ in awatch(*watched, debounce=200, step=50):
        yield "data: reload\n\n"


def create_preview_app(settings: Settings, database_url: str | None) -> Starlette:
    app = PreviewApp(settings, database_url)

    async def events(request: Request) -> Response:
        folders = [settings.campaigns_dir, settings.templates_dir]
        return StreamingResponse(_changes(folders), media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})

    async def test(request: Request) -> Response:
        form = (await request.body()).decode("utf-8", "replace")
        fields = parse_qs(form)
        address = (fields.get("to") or [""])[0]
        token = (fields.get("token") or [""])[0]
        return await run_in_threadpool(app.send_test, request.path_params["slug"], address,
                                       token)

    async def sends(request: Request) -> Response:
        return StreamingResponse(send_changes(settings, database_url, app.stage_labels),
                                 media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})

    def part(request: Request) -> Any:
        return app.part(request)

    studio = StudioPages(app.page, app.database, settings.tz)

    preview = Starlette(routes=[
        Route("/", app.index),
        Route("/campaigns/{slug}", app.campaign),
        Route("/campaigns/{slug}/report", app.report),
        Route("/campaigns/{slug}/{kind:str}", part, methods=["GET"]),
        Route("/campaigns/{slug}/test", test, methods=["POST"]),
        Route("/events", events),
        Route("/events/sends", sends),
        Route("/lists", studio.lists),
        Route("/segments", studio.segments),
        Route("/contacts", studio.contact),
    ])
    # Only this machine's names: a page elsewhere cannot rebind its domain to us.
    preview.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])
    preview.add_middleware(SecurityHeaders, headers=PREVIEW_HEADERS)  # (the outer one)
    return preview
