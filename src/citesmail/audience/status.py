"""A contact's status changes: only an active contact becomes unsubscribed or bounced
(an unsubscribe is never undone by a bounce, nor a complaint by an unsubscribe)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.orm import Session

from ..db import Contact, changed, utcnow
from ..states import ContactStatus

_CHUNK = 500  # ids per statement: within every database's limit on parameters


def leave(session: Session, contact_ids: Sequence[int], status: ContactStatus) -> int:
    """The active ones among `contact_ids` take `status`; returns how many did."""
    now, done = utcnow(), 0
    ids = sorted(set(contact_ids))
    for start in range(0, len(ids), _CHUNK):
        done += changed(session, update(Contact)
                        .where(Contact.id.in_(ids[start:start + _CHUNK]),
                               Contact.status == ContactStatus.ACTIVE)
                        .values(status=status, updated_at=now))
    return done
