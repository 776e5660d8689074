"""The sign-up form (`/s/<list>`) and the confirmation link (`/confirm/<token>`) of the
public app.

A form that is refused (unknown list, foreign origin, too many posts, a line break, a
tag or 5,000 characters in a field, the honeypot filled, no consent) stores nothing and
says why; every accepted one gets the same answer, whoever the address belongs to.
Confirmation links only show a button: a mail scanner that opens them confirms nobody.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from urllib.parse import parse_qs

from sqlalchemy.exc import IntegrityError
from starlette.responses import HTMLResponse, Response

from ..audience.lists import public_lists
from ..audience.measurement import consent_text as measurement_text
from ..audience.signup import Confirmed, FieldError, SignUp, confirm, sign_up
from ..config import Settings, origin_of
from ..db import Contact, Database, MailingList, utcnow
from ..errors import CitesmailError
from ..render.labels import labels_for
from ..tokens import DEVELOPMENT_SECRET, ExpiredToken, read_confirm_token
from .pages import render_page
from .ratelimit import RateLimit

MAX_FIELD = 5000  # characters in any field
RATE_WINDOW = 600.0  # seconds: [subscribe] rate_per_ip counts sign-ups in this window
HONEYPOT = "website"  # hidden from people; robots fill it
TEXT_FIELDS = ("email", "first_name", "last_name", "organization")
AUTOCOMPLETE = {"first_name": "given-name", "last_name": "family-name",
                "organization": "organization"}
_TAG = re.compile(r"<\s*/?\s*[A-Za-z!?]")


class Refused(Exception):
    """A form not taken: the HTTP status, the words' key, and the field it is about."""

    def __init__(self, status: int, problem: str, field: str = "") -> None:
        super().__init__(problem)
        self.status, self.problem, self.field = status, problem, field


def _page(lang: str, title: str, text: str, status: int = 200, button: str = "") -> Response:
    return HTMLResponse(render_page("public/page.html.j2", lang=lang, title=title,
                                    text=text, button=button), status_code=status)


def check_fields(fields: Mapping[str, list[str]]) -> None:
    """A line break, a tag or more than MAX_FIELD characters in any field: refused."""
    for name, values in fields.items():
        for value in values:
            if len(value) > MAX_FIELD:
                raise Refused(400, "problem_too_long", name)
            if "\r" in value or "\n" in value:
                raise Refused(400, "problem_line_break", name)
            if _TAG.search(value):
                raise Refused(400, "problem_tag", name)


class SignupPages:
    def __init__(self, settings: Settings, db: Database, queued: Callable[[], None]) -> None:
        self.settings, self.db, self.queued = settings, db, queued
        self.lang = settings.campaigns.lang
        self.t = labels_for(self.lang)
        self.secret = settings.secret or DEVELOPMENT_SECRET
        self.per_ip = RateLimit(settings.subscribe.rate_per_ip, RATE_WINDOW)
        self.origins = {origin_of(settings.unsubscribe.base_url),
                        *settings.subscribe.allowed_origins}

    def _words(self, key: str, **values: str) -> str:
        return self.t[key].format(org=self.settings.organization.name, **values)

    def _measurement_text(self) -> str | None:
        """The words of the optional measurement box; None when it is not offered."""
        tracking = self.settings.tracking
        if not tracking.individual:
            return None
        return measurement_text(tracking, self.lang, self.settings.organization.name)

    def _form(self, list_name: str, *, chosen: list[str] | None = None,
              values: Mapping[str, str] | None = None, error: str = "",
              error_field: str = "", measurement: bool = False,
              status: int = 200) -> Response:
        with self.db.session(write=False) as session:
            lists = public_lists(session)
        if list_name not in {choice.name for choice in lists}:
            return _page(self.lang, self.t["signup_unknown_list"],
                         self.t["signup_unknown_list"], 404)
        page = render_page(
            "public/signup.html.j2", lang=self.lang, t=self.t,
            title=self._words("signup_title"), action=f"/s/{list_name}", lists=lists,
            chosen=chosen if chosen is not None else [list_name],
            values={name: (values or {}).get(name, "") for name in TEXT_FIELDS},
            consent_text=self.settings.subscribe.consent_text, error=error,
            error_field=error_field, autocomplete=AUTOCOMPLETE,
            measurement_text=self._measurement_text(), measurement=measurement)
        # Browsers send `Origin: null` with a form posted from a no-referrer page: this
        # one says its origin to itself (and to nobody else).
        return HTMLResponse(page, status_code=status,
                            headers={"referrer-policy": "same-origin"})

    def page(self, list_name: str) -> Response:
        return self._form(list_name)

    def post(self, list_name: str, body: bytes, headers: Mapping[str, str],
             client: str) -> Response:
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        with self.db.session(write=False) as session:
            if list_name not in {choice.name for choice in public_lists(session)}:
                return _page(self.lang, self.t["signup_unknown_list"],
                             self.t["signup_unknown_list"], 404)
        values = {name: fields.get(name, [""])[0].strip() for name in TEXT_FIELDS}
        chosen = fields.get("lists", [])
        measurement = fields.get("measurement", [""])[0] == "yes"
        try:
            source = self._check(fields, headers, client)
            queued = self._sign_up(values, chosen, list_name, source, measurement)
        except Refused as refused:
            return self._refused(refused, list_name, values, chosen, measurement)
        if queued:
            self.queued()
        return _page(self.lang, self.t["signup_sent_title"],
                     self._words("signup_sent", email=values["email"]))

    def _check(self, fields: Mapping[str, list[str]], headers: Mapping[str, str],
               client: str) -> str:
        """Every check before anything is written; the consent event's source."""
        origin = headers.get("origin") or (origin_of(headers["referer"])
                                           if headers.get("referer") else "")
        if origin and origin not in self.origins:
            raise Refused(403, "signup_origin")
        if not self.per_ip.allow(client):
            raise Refused(429, "signup_too_many")
        check_fields(fields)
        if any(value for value in fields.get(HONEYPOT, [])):
            raise Refused(400, "signup_honeypot")
        if fields.get("consent", [""])[0] != "yes":
            raise Refused(400, "problem_consent", "consent")
        return f"form {origin or 'without origin'}"

    def _sign_up(self, values: dict[str, str], chosen: list[str], list_name: str,
                 source: str, measurement: bool) -> bool:
        form = SignUp(values["email"], {name: values[name] for name in AUTOCOMPLETE},
                      chosen, f"{source} /s/{list_name}",
                      self.settings.subscribe.consent_text, self.lang,
                      self._measurement_text() if measurement else None)
        try:
            with self.db.session() as session:
                return sign_up(session, form, utcnow()) is not None
        except FieldError as exc:
            raise Refused(400, "problem_field", exc.field) from exc
        except IntegrityError:  # the same new address posted twice at once: one is kept
            return False

    def _refused(self, refused: Refused, list_name: str, values: dict[str, str],
                 chosen: list[str], measurement: bool) -> Response:
        if refused.status != 400 or refused.problem == "signup_honeypot":
            return _page(self.lang, self._words("signup_title"), self.t[refused.problem],
                         refused.status)
        field = self.t.get(f"field_{refused.field}", refused.field)
        why = ""
        if isinstance(refused.__cause__, FieldError):
            why = refused.__cause__.problems[0].message
        problem = self.t[refused.problem].format(field=field, why=why)
        return self._form(list_name, chosen=chosen, values=values, status=400,
                          error=self._words("signup_error", problem=problem),
                          error_field=refused.field, measurement=measurement)

    def _token(self, token: str) -> tuple[int, list[int]] | Response:
        try:
            return read_confirm_token(self.secret, token, int(time.time()))
        except ExpiredToken:
            return _page(self.lang, self.t["confirm_title"], self.t["confirm_expired"], 410)
        except CitesmailError:
            return _page(self.lang, self.t["bad_link"], self.t["bad_link"], 400)

    def confirm_page(self, token: str) -> Response:
        found = self._token(token)
        if isinstance(found, Response):
            return found
        with self.db.session(write=False) as session:
            contact = session.get(Contact, found[0])
            email = contact.email if contact is not None else None
        if email is None:
            return _page(self.lang, self.t["confirm_title"], self.t["confirm_gone"], 404)
        return _page(self.lang, self.t["confirm_title"],
                     self._words("confirm_question", email=email),
                     button=self._words("confirm_button"))

    def confirm(self, token: str) -> Response:
        found = self._token(token)
        if isinstance(found, Response):
            return found
        contact_id, list_ids = found
        with self.db.session() as session:
            done = confirm(session, contact_id, list_ids, "confirmation link",
                           self.settings.subscribe.consent_text, utcnow())
        answers: dict[Confirmed, tuple[str, int]] = {
            Confirmed.DONE: ("confirmed", 200), Confirmed.GONE: ("confirm_gone", 404),
            Confirmed.REFUSED: ("confirm_refused", 403)}
        key, status = answers[done]
        return _page(self.lang, self.t["confirm_title"], self._words(key), status)



def form_snippet(settings: Settings, lists: list[MailingList]) -> str:
    """The form to paste into the organisation's site: it posts to serve's /s/<first>."""
    base = settings.unsubscribe.base_url.rstrip("/")
    return render_page("public/snippet.html.j2", org=settings.organization.name,
                       names=[chosen.name for chosen in lists], lists=lists,
                       action=f"{base}/s/{lists[0].name}",
                       t=labels_for(settings.campaigns.lang), autocomplete=AUTOCOMPLETE,
                       consent_text=settings.subscribe.consent_text)
