"""The public app (`citesmail serve`): one-click unsubscribe (RFC 8058), web view, an
event's calendar links (its .ics, and short links off to Google's and Outlook.com's pages),
the sign-up form with its confirmation link (signup.py), whose emails a thread of
its own sends (delivery/outgoing.py), and the published campaigns under /archive/
(archive.py).

It sits behind the organisation's reverse proxy at `[unsubscribe] base_url`. Links carry
an HMAC-signed token naming the contact and the campaign: a tampered token gets 400, an
unknown contact 404, and neither reveals nor changes anything.

An unsubscribe is answered 2xx only once it is durable: a line in the intake (intake.py),
fsynced, which the applier thread (applier.py) then writes into the database, at once or,
while the database is locked, as soon as it is free. When even the intake cannot be
written (disk full) the answer is 503 with Retry-After, never a 2xx.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ..config import Settings
from ..db import Database, make_engine
from ..dberrors import DatabaseBusy
from ..delivery.lookup import Lookup, Person, Published
from ..delivery.outgoing import OutgoingSender
from ..delivery.transports import make_transport
from ..errors import CitesmailError
from ..intake import WEB_VIEW, IntakeError, append, intake_path
from ..message import Recipient, calendar_filename, links_for, recipient_values
from ..render.calendar import calendar_page, facts_from_invitation
from ..render.labels import labels_for
from ..render.slots import fill
from ..tokens import DEVELOPMENT_SECRET, read_token
from ..tracking.measure import measurement_for
from .applier import Applier
from .archive import Archive, archive_routes
from .clicks import Measures, measure_routes
from .pages import render_page
from .preferences import preference_routes
from .security import SecurityHeaders
from .signup import SignupPages

RETRY_AFTER = "60"  # seconds, when a request could not be made durable
NO_WAIT = timedelta(0)


@dataclass
class Found:
    contact: Person
    send: Published | None
    lang: str
    campaign: str = ""  # the campaign the token names


def _page(lang: str, title: str, text: str, status: int = 200, *,
          button: str = "") -> HTMLResponse:
    """A short page in the reader's language: one sentence, and a button to confirm."""
    page = render_page("public/page.html.j2", lang=lang, title=title, text=text,
                       button=button)
    return HTMLResponse(page, status_code=status)


class PublicApp:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings, self.db = settings, db
        # `citesmail serve` refuses to start without a secret; the development key is
        # only for in-process use (tests, trials on one machine).
        self.secret = settings.secret or DEVELOPMENT_SECRET
        self.lookup = Lookup(db)
        # Web views on SQLite read in the event loop, on a connection that never waits
        # for a lock: a read of a few rows (about 0.2 ms) cost more when handed to one of
        # 40 threads (switches, the GIL passed around under load: measured 3x slower).
        # Should that read find the database busy, the view is read again in a thread.
        self.quick = None if db.is_postgresql else Lookup(Database(
            make_engine(db.engine.url.render_as_string(hide_password=False), NO_WAIT),
            NO_WAIT))
        self.intake = intake_path(db, settings.workspace)
        self.applier = Applier(db, self.intake, _log)
        # Confirmation emails leave from this thread, never from a request.
        self.sender = OutgoingSender(db, settings, lambda: make_transport(settings), _log)
        self.signup = SignupPages(settings, db, self.sender.wake.set)
        self.measures = Measures(db, self.secret, self.intake, self.applier.appended_one)

    def _find(self, token: str, lookup: Lookup | None = None) -> Found | Response:
        lang = self.settings.campaigns.lang
        t = labels_for(lang)
        try:
            contact_id, campaign = read_token(self.secret, token)
        except CitesmailError:
            return _page(lang, t["bad_link"], t["bad_link"], 400)
        found = (lookup or self.lookup).find(contact_id, campaign)
        if found is None:
            return _page(lang, t["bad_link"], t["bad_link"], 404)
        person, send = found
        return Found(person, send, send.lang if send is not None and send.lang else lang,
                     campaign)

    def _texts(self, found: Found) -> dict[str, str]:
        t = labels_for(found.lang)
        values = {"org": self.settings.organization.name, "email": found.contact.email}
        return {key: t[key].format(**values) for key in
                ("unsubscribe_question", "unsubscribe_button", "unsubscribed", "unsubscribe")}

    def confirm_page(self, request: Request) -> Response:
        found = self._find(request.path_params["token"])
        if not isinstance(found, Found):
            return found
        return self.confirm_page_for(found, status=200)

    def unsubscribe(self, token: str, body: bytes) -> Response:
        found = self._find(token)
        if not isinstance(found, Found):
            return found
        fields = parse_qs(body.decode("utf-8", "replace").strip())
        # RFC 8058: "List-Unsubscribe=One-Click", url-encoded or as multipart/form-data
        one_click = fields.get("List-Unsubscribe") == ["One-Click"] or (
            b'name="List-Unsubscribe"' in body and b"One-Click" in body)
        if not one_click and fields.get("confirm") != ["1"]:
            return self.confirm_page_for(found)
        return self.unsubscribe_found(found)

    def unsubscribe_found(self, found: Found) -> Response:
        """Unsubscribe from everything, answered once durable (also the preference
        page's "unsubscribe from everything")."""
        try:  # durable first: the database may be locked for minutes
            append(self.intake, found.contact.id, campaign=found.campaign)
        except IntakeError as exc:
            _log(f"intake: {exc.problems[0].message}: answered 503")
            t = labels_for(found.lang)
            page = _page(found.lang, t["unsubscribe"], t["try_again"], 503)
            page.headers["Retry-After"] = RETRY_AFTER
            return page
        self.applier.wait_applied(self.applier.appended_one())
        texts = self._texts(found)
        return _page(found.lang, texts["unsubscribe"], texts["unsubscribed"])

    def confirm_page_for(self, found: Found, status: int = 400) -> Response:
        """The question and its button (400 for a POST that was neither one-click nor a
        confirmation: the person can still confirm from here)."""
        texts = self._texts(found)
        return _page(found.lang, texts["unsubscribe"], texts["unsubscribe_question"], status,
                     button=texts["unsubscribe_button"])

    def web_view(self, request: Request, lookup: Lookup | None = None) -> Response:
        found = self._find(request.path_params["token"], lookup)
        if not isinstance(found, Found):
            return found
        if found.send is None:
            t = labels_for(found.lang)
            return _page(found.lang, t["bad_link"], t["bad_link"], 404)
        person, send = found.contact, found.send
        recipient = Recipient(person.email, person.first_name, person.last_name,
                              person.organization, person.id, person.lists)
        values = recipient_values(recipient, links_for(self.settings, person.id,
                                                       send.campaign))
        # Counted once the page has gone (a thread of Starlette's): a view is no request
        # to honour, and its page never waits for the intake's fsync.
        html, slots = send.html, send.slots
        measurement = measurement_for(self.settings, send.id, send.clicks, "off")
        if measurement is not None:  # its links counted as the message's (naming nobody)
            html, _, slots = measurement.apply(html, "", slots)
        return HTMLResponse(fill(html, slots, values, escape=True),
                            background=BackgroundTask(self.count_view, send.campaign))

    def count_view(self, campaign: str) -> None:
        """A web view read: counted per campaign and hour, naming nobody."""
        try:
            append(self.intake, 0, WEB_VIEW, campaign=campaign)
        except IntakeError as exc:  # the page was shown; only its count is lost
            _log(f"intake: {exc.problems[0].message}: web view not counted")
            return
        self.applier.appended_one()

    def calendar(self, request: Request) -> Response:
        """The event's invitation as a file, for calendars that take no attachment."""
        found = self._find(request.path_params["token"])
        if not isinstance(found, Found):
            return found
        if found.send is None or not found.send.calendar:
            t = labels_for(found.lang)
            return _page(found.lang, t["bad_link"], t["bad_link"], 404)
        name = calendar_filename(found.send.campaign)
        return Response(found.send.calendar.encode("utf-8"),
                        media_type="text/calendar; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    def calendar_service(self, request: Request) -> Response:
        """A short link of the text part: off to Google's or Outlook.com's page for
        adding the event, made from the invitation the send stored."""
        found = self._find(request.path_params["token"])
        if not isinstance(found, Found):
            return found
        calendar = found.send.calendar if found.send else None
        page = calendar_page(facts_from_invitation(calendar),
                             request.path_params["service"]) if calendar else None
        if page is None:
            t = labels_for(found.lang)
            return _page(found.lang, t["bad_link"], t["bad_link"], 404)
        return RedirectResponse(page, status_code=303)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def create_public_app(settings: Settings, db: Database) -> Starlette:
    app = PublicApp(settings, db)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        app.applier.start()  # also applies what a previous run left (a crash)
        app.sender.start()  # also sends what was queued while serve was down
        try:
            yield
        finally:
            await run_in_threadpool(app.sender.close)
            await run_in_threadpool(app.applier.close)
            if app.quick is not None:
                app.quick.db.close()

    async def unsubscribe(request: Request) -> Response:
        body = await request.body()
        return await run_in_threadpool(app.unsubscribe, request.path_params["token"], body)

    async def unsubscribe_link(request: Request) -> Response:
        # One route for both methods, so that a 405 lists them all in its Allow header.
        if request.method == "POST":
            return await unsubscribe(request)
        return await run_in_threadpool(app.confirm_page, request)

    async def web_view(request: Request) -> Response:
        if app.quick is not None:
            with contextlib.suppress(DatabaseBusy):
                return app.web_view(request, app.quick)
        return await run_in_threadpool(app.web_view, request)

    async def signup(request: Request) -> Response:
        name = request.path_params["list"]
        if request.method == "POST":
            body = await request.body()
            client = request.client.host if request.client else ""
            return await run_in_threadpool(app.signup.post, name, body, request.headers,
                                           client)
        return await run_in_threadpool(app.signup.page, name)

    async def confirm_signup(request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "POST":
            return await run_in_threadpool(app.signup.confirm, token)
        return await run_in_threadpool(app.signup.confirm_page, token)

    async def not_found(request: Request) -> Response:
        return Response("not found", status_code=404, media_type="text/plain")

    starlette = Starlette(routes=[  # no slash redirects: RFC 8058 POSTs must not move
        Route("/u/{token}", unsubscribe_link, methods=["GET", "POST"]),
        Route("/v/{token}", web_view, methods=["GET"]),
        Route("/v/{token}/event.ics", app.calendar, methods=["GET"]),
        Route("/v/{token}/{service}", app.calendar_service, methods=["GET"]),
        Route("/s/{list}", signup, methods=["GET", "POST"]),
        Route("/confirm/{token}", confirm_signup, methods=["GET", "POST"]),
        *preference_routes(app),
        *measure_routes(app.measures),
        *archive_routes(Archive(settings, db)),
        Route("/", not_found),
    ], lifespan=lifespan)
    starlette.router.redirect_slashes = False
    starlette.add_middleware(SecurityHeaders)
    return starlette
