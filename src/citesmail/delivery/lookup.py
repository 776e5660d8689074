"""What a link token names: the person, their row in the campaign's send, and the stored
message. One query per request; a second one, for the web view's footer, names the
public lists of the send's segment the person is on (those lists are read with the
message). A send's stored message changes only when a scheduled send is rescheduled, so
it is read once per version of the send and kept (the web view's cost was mostly the ORM
loading the same large row again and again)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ..audience.lists import lists_of, segment_lists
from ..audience.segments import Definition
from ..db import Database, Segment, Send

_LANG = re.compile(r'<html[^>]*\blang="([A-Za-z_-]+)"')
_KEPT = 64  # stored messages kept: a centre's recent sends
Version = tuple[int, object, str]  # a send's id, creation time and source hash

# The person, the send of the campaign (if any) and their snapshot in it (if any).
_FIND = text(
    "SELECT c.id, c.email, c.first_name, c.last_name, c.organization, s.id, d.id, "
    "d.first_name, d.last_name, d.organization, s.created_at, s.source_hash "
    "FROM contacts c "
    "LEFT JOIN sends s ON s.campaign = :campaign "
    "LEFT JOIN deliveries d ON d.send_id = s.id AND d.contact_id = c.id "
    "WHERE c.id = :contact")


@dataclass(frozen=True)
class Person:
    """A contact as a link shows them: names from the send's snapshot when there is one
    (the message they got), else from the contact."""

    id: int
    email: str
    first_name: str
    last_name: str
    organization: str
    lists: str = ""  # the public lists of the send's segment they are on


@dataclass(frozen=True)
class Published:
    """A send's stored message, as the web view and the calendar link serve it."""

    id: int
    campaign: str
    html: str
    slots: tuple[tuple[str, str], ...]
    calendar: str | None
    lang: str | None  # the language the message was written in
    lists: dict[int, str] = field(default_factory=dict)  # the segment's public lists
    clicks: str = "off"  # how its messages' clicks are counted (Send.clicks)


class Lookup:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._kept: dict[Version, Published] = {}
        self._lock = threading.Lock()

    def find(self, contact_id: int, campaign: str) -> tuple[Person, Published | None] | None:
        """The person and the campaign's stored message; None for an unknown contact."""
        with self.db.session(write=False) as session:
            row = session.execute(_FIND, {"contact": contact_id, "campaign": campaign}).first()
            if row is None:
                return None
            # A rescheduled send is rewritten in place, and SQLite may give a deleted
            # send's id to the next one: what is kept is keyed by all three.
            version = (row[5], row[10], row[11])
            published = self._published(session, version) if row[5] is not None else None
            # The footer names the segment's public lists the person is on: a second
            # query, only for a send to a segment that has some.
            lists = lists_of(session, [row[0]], published.lists).get(row[0], "") \
                if published is not None else ""
        names = row[7:10] if row[6] is not None else row[2:5]
        first, last, organization = (value or "" for value in names)
        person = Person(row[0], row[1], first, last, organization, lists)
        return person, published

    def _published(self, session: Session, version: Version) -> Published | None:
        with self._lock:
            kept = self._kept.get(version)
        if kept is not None:
            return kept
        send = session.get(Send, version[0])
        if send is None:
            return None
        match = _LANG.search(send.html[:2000])
        definition = session.scalar(select(Segment.definition)
                                    .where(Segment.name == send.segment)) \
            if send.segment else None
        names = Definition.from_json(definition).lists if definition is not None else []
        published = Published(send.id, send.campaign, send.html,
                              tuple((name, default) for name, default in send.slots),
                              send.calendar, match.group(1) if match else None,
                              segment_lists(session, names), send.clicks or "off")
        with self._lock:
            if len(self._kept) >= _KEPT:
                self._kept.pop(next(iter(self._kept)))
            self._kept[version] = published
        return published
