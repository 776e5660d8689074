"""Consent history: each event (given, confirmed, withdrawn) with its source, time and
the exact text shown, stored once and referenced by its SHA-256."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from ..db import ConsentEvent, ConsentText, MailingList, column_length, utcnow
from ..states import GRANTS, ConsentKind
from .lists import insert_ignoring_duplicates

SOURCE_LENGTH = column_length(ConsentEvent, "source")
COMMAND = "command"  # the source of what a person did with the CLI


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def store_text(session: Session, text: str) -> str:
    """The text's hash, the text stored once (already there: nothing written)."""
    digest = text_hash(text)
    if session.get(ConsentText, digest) is None:
        insert_ignoring_duplicates(session, ConsentText, [
            {"hash": digest, "text": text, "created_at": utcnow()}])
    return digest


def cut_source(source: str) -> str:
    """A source within its column (a long file name is cut, not refused)."""
    return source[:SOURCE_LENGTH]


def record(session: Session, contact_ids: Sequence[int], kind: ConsentKind, source: str,
           *, mailing_list: MailingList | None = None, text: str | None = None,
           at: datetime | None = None, campaign: str | None = None) -> None:
    """One event for each contact, about `mailing_list` (None: every list); `campaign`:
    the campaign whose message led to it, when known (reports count these)."""
    if not contact_ids:
        return
    digest = store_text(session, text) if text is not None else None
    event = {"kind": str(kind), "source": cut_source(source), "at": at or utcnow(),
             "list_id": mailing_list.id if mailing_list else None,
             "list_name": mailing_list.name if mailing_list else None,
             "consent_text_hash": digest, "campaign": campaign or None}
    # Core, not ORM objects: many contacts leave at once (an intake, a bounce report).
    session.execute(insert(ConsentEvent), [{**event, "contact_id": contact_id}
                                           for contact_id in contact_ids])


@dataclass(frozen=True)
class Event:
    kind: str
    source: str
    at: datetime
    list_name: str | None
    text: str | None


def history(session: Session, contact_id: int) -> list[Event]:
    """A contact's events, oldest first."""
    query = (select(ConsentEvent.kind, ConsentEvent.source, ConsentEvent.at,
                    ConsentEvent.list_name, ConsentText.text)
             .outerjoin(ConsentText, ConsentText.hash == ConsentEvent.consent_text_hash)
             .where(ConsentEvent.contact_id == contact_id)
             .order_by(ConsentEvent.at, ConsentEvent.id))
    return [Event(*row) for row in session.execute(query)]


def latest_grants(session: Session, contact_ids: list[int]) -> dict[int, Event]:
    """Each contact's latest event by which consent was given (states.GRANTS)."""
    query = (select(ConsentEvent.contact_id, ConsentEvent.kind, ConsentEvent.source,
                    ConsentEvent.at, ConsentEvent.list_name)
             .where(ConsentEvent.contact_id.in_(contact_ids),
                    ConsentEvent.kind.in_([str(kind) for kind in GRANTS]))
             .order_by(ConsentEvent.contact_id, ConsentEvent.at, ConsentEvent.id))
    return {contact_id: Event(kind, source, at, list_name, None)
            for contact_id, kind, source, at, list_name in session.execute(query)}


def forget(session: Session, contact_ids: list[int]) -> None:
    """Remove the contacts' events (their texts stay: a text names nobody)."""
    session.execute(delete(ConsentEvent).where(ConsentEvent.contact_id.in_(contact_ids)))


def first_words(text: str | None, words: int = 8) -> str:
    """The start of a consent text, as `contacts show` prints it."""
    if text is None:
        return "(no text recorded)"
    split = text.split()
    return " ".join(split[:words]) + (" …" if len(split) > words else "")
