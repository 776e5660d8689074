"""The studio's read-only pages beside the preview: lists, segments (with the contacts
each one selects) and one contact's history. Nothing here changes anything stored."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from ..audience.consent import Event, history
from ..audience.contacts import find_contact, lists_of, sends_of
from ..audience.lists import list_summaries
from ..audience.segments import Definition, all_segments, count
from ..db import Contact, Database
from ..errors import CitesmailError

Page = Callable[..., Response]


@dataclass(frozen=True)
class SegmentRow:
    name: str
    definition: Definition
    count: int


@dataclass(frozen=True)
class SendRow:
    campaign: str
    state: str
    at: datetime | None

    @property
    def url(self) -> str:
        return quote(self.campaign)


@dataclass(frozen=True)
class History:
    contact: Contact
    lists: list[str]
    events: list[Event]
    sends: list[SendRow]


def segments(session: Session) -> list[SegmentRow]:
    return [SegmentRow(name, definition, count(session, definition))
            for name, definition in all_segments(session)]


def contact_history(session: Session, address: str, tz: ZoneInfo) -> History | None:
    """What `contacts show` prints about the contact, or None when no contact has the
    address (or it is no address)."""
    try:
        contact = find_contact(session, address)
    except CitesmailError:
        return None
    events = [Event(e.kind, e.source, e.at.astimezone(tz), e.list_name, e.text)
              for e in history(session, contact.id)]
    sends = [SendRow(campaign, state, at.astimezone(tz) if at else None)
             for campaign, state, at in sends_of(session, contact.id)]
    lists = lists_of(session, contact.id)
    session.expunge(contact)  # shown after the session ends
    return History(contact, lists, events, sends)


class StudioPages:
    """The pages; `page` renders a template of templates/preview/ in the studio's
    language, `database` opens the workspace's database for one request (or None)."""

    def __init__(self, page: Page,
                 database: Callable[[], AbstractContextManager[Database | None]],
                 tz: ZoneInfo) -> None:
        self.page, self.database, self.tz = page, database, tz

    def lists(self, request: Request) -> Response:
        with self.database() as db:
            if db is None:
                return self.page("lists.html.j2", database=False, lists=[])
            with db.session(write=False) as session:
                found = list_summaries(session)
        return self.page("lists.html.j2", database=True, lists=found)

    def segments(self, request: Request) -> Response:
        with self.database() as db:
            if db is None:
                return self.page("segments.html.j2", database=False, segments=[])
            with db.session(write=False) as session:
                found = segments(session)
        return self.page("segments.html.j2", database=True, segments=found)

    def contact(self, request: Request) -> Response:
        address = request.query_params.get("email", "").strip()
        with self.database() as db:
            if db is None:
                return self.page("contacts.html.j2", database=False, address=address,
                                 contact=None)
            with db.session(write=False) as session:
                found = contact_history(session, address, self.tz) if address else None
        if found is None:
            return self.page("contacts.html.j2", database=True, address=address,
                             contact=None, status=404 if address else 200)
        return self.page("contacts.html.j2", database=True, address=address,
                         contact=found.contact, lists=found.lists, events=found.events,
                         sends=found.sends)
