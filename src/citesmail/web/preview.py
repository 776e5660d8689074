"""The preview app (`citesmail preview`, 127.0.0.1 only): every campaign rendered through
the same path as a real send, with live reload when a campaign or template is saved."""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..checks import CampaignCheck, check_campaign, check_settings
from ..config import Settings
from ..errors import CitesmailError
from ..message import SAMPLE_RECIPIENT, MessageTemplate, Recipient, personalize
from ..render.lint import GMAIL_CLIP_BYTES
from .security import HEADERS, SecurityHeaders

if TYPE_CHECKING:
    from ..db import Database

_RELOAD_JS = "new EventSource('/events').onmessage = () => location.reload();"
_RELOAD = f"<script>{_RELOAD_JS}</script>"
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
_STYLE = ("body{font-family:Arial,Helvetica,sans-serif;margin:1.5rem;color:#1f2937}"
          "table{border-collapse:collapse}td,th{padding:.3rem .6rem;border-bottom:1px solid "
          "#e5e7eb;text-align:left}.frames{display:flex;gap:1.5rem;align-items:flex-start}"
          "iframe{border:1px solid #d1d5db;height:1400px;background:#fff}"
          ".inbox{border:1px solid #d1d5db;padding:.6rem;max-width:60rem}"
          ".error{color:#b91c1c}.warning{color:#92400e}pre{white-space:pre-wrap;"
          "max-width:60rem;background:#f9fafb;padding:1rem}")


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
                        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
                        f"<body>{body}{_RELOAD}</body></html>")


class PreviewApp:
    def __init__(self, settings: Settings, database_url: str | None) -> None:
        self.settings = settings
        self.database_url = database_url
        # Another web page must not make the browser send tests through this server.
        self.form_token = secrets.token_urlsafe(16)

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
        from ..db import open_database

        db = open_database(self.database_url)
        try:
            yield db
        finally:
            db.close()

    def recipient(self, address: str | None) -> Recipient:
        if not address or self.database_url is None:
            return SAMPLE_RECIPIENT
        from ..audience.recipients import find_recipient
        from ..db import open_database

        db = open_database(self.database_url)
        try:
            with db.session(write=False) as session:
                return find_recipient(session, address)
        except CitesmailError:
            return SAMPLE_RECIPIENT
        finally:
            db.close()

    def contacts(self, limit: int = 200) -> list[str]:
        if self.database_url is None:
            return []
        from ..audience.recipients import active_addresses
        from ..db import open_database

        db = open_database(self.database_url)
        try:
            with db.session(write=False) as session:
                return active_addresses(session, limit)
        finally:
            db.close()

    def slugs(self) -> list[str]:
        return sorted(p.stem for p in self.settings.campaigns_dir.glob("*.md"))

    # -- pages ----------------------------------------------------------------------------

    def index(self, request: Request) -> Response:
        rows = []
        with self.database() as db:
            checks = [(slug, self.preview(slug, db)) for slug in self.slugs()]
        for slug, found in checks:
            if found.rendered is None:
                status = f'<span class="error">{html.escape(str(found.errors[0]))}</span>'
                rows.append(f'<tr><td><a href="/campaigns/{_url(slug)}">{html.escape(slug)}'
                            f"</a></td><td></td><td></td><td></td><td></td><td>{status}</td></tr>")
                continue
            c = found.rendered.campaign
            when = c.event.starts.strftime("%Y-%m-%d %H:%M") if c.event and c.event.starts \
                else ""
            status = _status(found)
            rows.append(f'<tr><td><a href="/campaigns/{_url(slug)}">{html.escape(c.title)}'
                        f"</a></td><td>{html.escape(c.kind)}</td><td>{when}</td>"
                        f"<td>{html.escape(c.subject)}</td><td>{html.escape(slug)}</td>"
                        f"<td>{status}</td></tr>")
        return _page("citesmail preview", "<h1>Campaigns</h1><table><tr><th>title</th>"
                     "<th>kind</th><th>date</th><th>subject</th><th>file</th><th>check</th>"
                     "</tr>" + "".join(rows) + "</table>")

    def campaign(self, request: Request) -> Response:
        slug = request.path_params["slug"]
        if slug not in self.slugs():
            return PlainTextResponse("no such campaign", status_code=404)
        with self.database() as db:
            found = self.preview(slug, db)
        if found.rendered is None:
            errors = "".join(f'<li class="error">{html.escape(str(p))}</li>'
                             for p in found.errors)
            return _page(slug, f'<p><a href="/">campaigns</a></p><h1>{html.escape(slug)}</h1>'
                         f"<ul>{errors}</ul>")
        address = request.query_params.get("as", "")
        recipient = self.recipient(address)
        parts = personalize(found.rendered, recipient, self.settings)
        query = html.escape(f"?as={quote(address)}") if address else ""
        slug = _url(slug)
        c = found.rendered.campaign
        size = len(parts.html.encode("utf-8"))
        options = "".join(f'<option value="{html.escape(e)}"{" selected" if e == address else ""}>'
                          f"{html.escape(e)}</option>" for e in self.contacts())
        warnings = "".join(f'<li class="error">{html.escape(str(p))}</li>'
                           for p in found.errors) + "".join(
            f'<li class="warning">{html.escape(str(p))}</li>' for p in found.warnings
        ) or "<li>none</li>"
        body = (
            f'<p><a href="/">campaigns</a></p><h1>{html.escape(c.title)}</h1>'
            f'<div class="inbox"><strong>{html.escape(self.settings.sender.from_)}</strong><br>'
            f"<strong>{html.escape(c.subject)}</strong> — {html.escape(c.preheader or '')}</div>"
            f'<form method="get"><label>Preview as <select name="as"><option value="">'
            f"sample recipient</option>{options}</select></label> <button>show</button></form>"
            f"<p>HTML {size / 1024:.0f} KB of Gmail's {GMAIL_CLIP_BYTES // 1024} KB · "
            f'<a href="/campaigns/{slug}/eml{query}">download .eml</a> · '
            f'<a href="/campaigns/{slug}/html{query}">HTML</a> · '
            f'<a href="/campaigns/{slug}/text{query}">text</a>'
            + (f' · <a href="/campaigns/{slug}/ics">invitation .ics</a>'
               if found.rendered.calendar else "") + "</p>"
            f"<h2>Check</h2><ul>{warnings}</ul>"
            f'<div class="frames"><div><h2>600 px</h2>'
            f'<iframe title="desktop" width="620" sandbox="allow-popups" '
            f'src="/campaigns/{slug}/html{query}"></iframe></div><div><h2>375 px</h2>'
            f'<iframe title="phone" width="375" sandbox="allow-popups" '
            f'src="/campaigns/{slug}/html{query}"></iframe>'
            f"</div></div><h2>Text part</h2><pre>{html.escape(parts.text)}</pre>"
            f'<h2>Send a test</h2><form method="post" action="/campaigns/{slug}/test">'
            f'<input type="hidden" name="token" value="{self.form_token}">'
            f'<input name="to" type="email" required placeholder="you@example.org"> '
            f"<button>send a test</button></form>")
        return _page(c.title, body)

    def part(self, request: Request) -> Response:
        slug, kind = request.path_params["slug"], request.path_params["kind"]
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
        recipient = self.recipient(request.query_params.get("as"))
        if kind == "eml":
            data = MessageTemplate(found.rendered, self.settings).build(recipient)
            return Response(data, media_type="message/rfc822", headers={
                "content-disposition": f'attachment; filename="{slug}.eml"'})
        parts = personalize(found.rendered, recipient, self.settings)
        if kind == "html":
            return HTMLResponse(parts.html, headers=EMAIL_IN_FRAME_HEADERS)
        return PlainTextResponse(parts.text)

    def send_test(self, slug: str, address: str, token: str) -> Response:
        from ..delivery import send_tests
        from ..message import recipient_from_text

        if not secrets.compare_digest(token, self.form_token):
            return PlainTextResponse("use the form of the preview page", status_code=403)
        if slug not in self.slugs():
            return PlainTextResponse("no such campaign", status_code=404)
        found = self.preview(slug)
        if found.rendered is None:
            return PlainTextResponse("the campaign has errors", status_code=400)
        try:
            recipient = recipient_from_text(address)
            [(to, outcome)] = send_tests(self.settings, found.rendered, [recipient])
        except (ValueError, CitesmailError) as exc:
            return _page("test", f"<p class='error'>{html.escape(str(exc))}</p>")
        detail = "" if outcome.kind == "sent" else f" ({outcome.code} {outcome.message})"
        return _page("test", f'<p>{html.escape(to)}: {outcome.kind}{html.escape(detail)}</p>'
                     f'<p><a href="/campaigns/{slug}">back</a></p>')


def _status(found: CampaignCheck) -> str:
    """A campaign's findings in a few words, for the list of campaigns."""
    counts = [f"{len(found.errors)} error(s)"] if found.errors else []
    counts += [f"{len(found.warnings)} warning(s)"] if found.warnings else []
    return ", ".join(counts) or "ok"


def _url(slug: str) -> str:
    return html.escape(quote(slug))


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
        from urllib.parse import parse_qs

        fields = parse_qs(form)
        address = (fields.get("to") or [""])[0]
        token = (fields.get("token") or [""])[0]
        return await run_in_threadpool(app.send_test, request.path_params["slug"], address,
                                       token)

    def part(request: Request) -> Any:
        return app.part(request)

    preview = Starlette(routes=[
        Route("/", app.index),
        Route("/campaigns/{slug}", app.campaign),
        Route("/campaigns/{slug}/{kind:str}", part, methods=["GET"]),
        Route("/campaigns/{slug}/test", test, methods=["POST"]),
        Route("/events", events),
    ])
    # Only this machine's names: a page elsewhere cannot rebind its domain to us.
    preview.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])
    preview.add_middleware(SecurityHeaders, headers=PREVIEW_HEADERS)  # (the outer one)
    return preview
