"""The preference centre of `citesmail serve`: `GET /p/<token>` shows the public lists
with the reader's memberships, `POST /p/<token>` saves the choice at once (with its
consent events) or unsubscribes from everything, as the one-click link does.

The token is the one of the message's other links (a contact and a campaign, signed).
The form carries it again, and a POST is taken only from this site: an Origin (or,
without one, a Referer) of another site is refused, as is a form without the token. The
page asks the browser to send its origin along (Referrer-Policy: same-origin).
"""

from __future__ import annotations

import hmac
import sys
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..audience.measurement import consent_text
from ..audience.preferences import (
    BadChoice,
    Measurement,
    NotActive,
    Preferences,
    preferences,
    save,
)
from ..errors import CitesmailError
from ..render.labels import labels_for
from .pages import render_page

if TYPE_CHECKING:
    from .public import Found, PublicApp

RETRY_AFTER = "60"  # seconds, when the database could not take the choice
EVERYTHING = "everything"  # the value of the button that unsubscribes from everything
# Sent with the form when the page showed the measurement box: an unticked box is then
# a withdrawal (a page shown before measurement was offered withdraws nothing).
MEASUREMENT_SHOWN = "measurement_shown"


def preference_routes(app: PublicApp) -> list[Route]:
    centre = PreferenceCentre(app)

    async def endpoint(request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "POST":
            body = await request.body()
            return await run_in_threadpool(centre.post, token, body, request)
        return await run_in_threadpool(centre.get, token)

    return [Route("/p/{token}", endpoint, methods=["GET", "POST"])]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class PreferenceCentre:
    def __init__(self, app: PublicApp) -> None:
        self.app = app
        self.own = _origin(app.settings.unsubscribe.base_url)

    def get(self, token: str) -> Response:
        found = self.app._find(token)
        if isinstance(found, Response):
            return found
        return self._page(found, token)

    def post(self, token: str, body: bytes, request: Request) -> Response:
        found = self.app._find(token)
        if isinstance(found, Response):
            return found
        fields = parse_qs(body.decode("utf-8", "replace"))
        sent = fields.get("token", [""])[0]
        if not self._same_site(request) or not hmac.compare_digest(
                sent.encode("utf-8"), token.encode("utf-8")):
            return self._page(found, token, notice="prefs_refused", status=403)
        if fields.get("action") == [EVERYTHING]:
            return self.app.unsubscribe_found(found)
        try:
            with self.app.db.session() as session:
                save(session, found.contact.id, fields.get("list", []),
                     self._measurement(found, fields), found.campaign or None)
        except NotActive:
            return self._page(found, token, notice="prefs_cannot_join", status=409)
        except BadChoice:
            return self._page(found, token, notice="prefs_bad_choice", status=400)
        except CitesmailError as exc:  # the database locked or down: nothing was saved
            _log(f"preference page: {exc.problems[0].message}: answered 503")
            t = labels_for(found.lang)
            page = HTMLResponse(render_page("public/page.html.j2", lang=found.lang,
                                            title=t["prefs_title"], text=t["try_again"],
                                            button=""), status_code=503)
            page.headers["Retry-After"] = RETRY_AFTER
            return page
        return self._page(found, token, notice="prefs_saved")

    def _measurement_text(self, found: Found) -> str | None:
        """The words of the measurement box; None when it is not offered."""
        settings = self.app.settings
        if not settings.tracking.individual:
            return None
        return consent_text(settings.tracking, found.lang, settings.organization.name)

    def _measurement(self, found: Found, fields: dict[str, list[str]]) -> Measurement | None:
        text = self._measurement_text(found)
        if text is None or fields.get(MEASUREMENT_SHOWN) != ["1"]:
            return None
        return Measurement(fields.get("measurement") == ["yes"], text)

    def _same_site(self, request: Request) -> bool:
        """No Origin nor Referer (a browser that sends neither), or this site's."""
        origin = request.headers.get("origin")
        if origin is None:
            referer = request.headers.get("referer")
            if referer is None:
                return True
            origin = _origin(referer)
        allowed = {self.own, _origin(str(request.url))}
        return origin.lower() in allowed

    def _page(self, found: Found, token: str, *, notice: str = "",
              status: int = 200) -> Response:
        with self.app.db.session(write=False) as session:
            chosen = preferences(session, found.contact.id)
        if chosen is None:  # erased since the link was read
            t = labels_for(found.lang)
            return HTMLResponse(render_page("public/page.html.j2", lang=found.lang,
                                            title=t["bad_link"], text=t["bad_link"],
                                            button=""), status_code=404)
        page = HTMLResponse(self._render(found, token, chosen, notice), status_code=status)
        page.headers["Referrer-Policy"] = "same-origin"  # so that the POST says its origin
        return page

    def _render(self, found: Found, token: str, chosen: Preferences, notice: str) -> str:
        t = labels_for(found.lang)
        values = {"org": self.app.settings.organization.name, "email": chosen.email}
        texts = {key: text.format(**values) for key, text in t.items()
                 if key.startswith("prefs_")}
        return render_page("public/preferences.html.j2", lang=found.lang, t=texts,
                           token=token, prefs=chosen, notice=texts.get(notice, ""),
                           offered=[c for c in chosen.choices if c.public],
                           private=[c for c in chosen.choices if not c.public],
                           everything=EVERYTHING, shown=MEASUREMENT_SHOWN,
                           measurement_text=self._measurement_text(found))


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
