"""A contact's status changes: only an active (or pending) contact becomes unsubscribed,
bounced or complained (an unsubscribe is never undone by a bounce, nor a complaint by an
unsubscribe). Each change is recorded in the contact's consent history, here, once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from ..db import Contact, utcnow
from ..states import ConsentKind, ContactStatus
from .consent import record

_CHUNK = 500  # ids per statement: within every database's limit on parameters
# The statuses a contact can leave, and the event each departure records.
_LEAVING = (ContactStatus.ACTIVE, ContactStatus.PENDING)
_EVENTS = {ContactStatus.UNSUBSCRIBED: ConsentKind.UNSUBSCRIBE,
           ContactStatus.BOUNCED: ConsentKind.BOUNCE,
           ContactStatus.COMPLAINED: ConsentKind.COMPLAINT}


def leave(session: Session, contact_ids: Sequence[int], status: ContactStatus, *,
          source: str = "", at: datetime | None = None, campaign: str | None = None) -> int:
    """The active or pending ones among `contact_ids` take `status`, with an event
    (`source`: what said so; `at`: when, now by default; `campaign`: the campaign whose
    message led to it, when known); returns how many did.
    A contact that had already left is not changed and gets no event: applying the
    same request twice records it once."""
    now = utcnow()
    ids = sorted(set(contact_ids))
    left: list[int] = []
    for start in range(0, len(ids), _CHUNK):
        left += session.scalars(
            update(Contact).where(Contact.id.in_(ids[start:start + _CHUNK]),
                                  Contact.status.in_([str(s) for s in _LEAVING]))
            .values(status=status, updated_at=now).returning(Contact.id)).all()
    record(session, left, _EVENTS[status], source, at=at or now, campaign=campaign)
    return len(left)
