"""Pending contacts (signed up, never confirmed) are forgotten after `[subscribe]
pending_days`: contact, memberships and consent events."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..db import Contact, Membership, utcnow
from ..states import ContactStatus
from .consent import forget

_CHUNK = 500


def purge_pending(session: Session, days: int, now: datetime | None = None) -> int:
    """Delete the contacts pending for more than `days` (counted from their last change:
    a new sign-up starts the wait again); returns how many."""
    before = (now or utcnow()) - timedelta(days=days)
    # Locked on PostgreSQL: a confirmation meanwhile waits, then finds no contact.
    ids = list(session.scalars(select(Contact.id).where(
        Contact.status == ContactStatus.PENDING, Contact.updated_at < before)
        .with_for_update()))
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        session.execute(delete(Membership).where(Membership.contact_id.in_(chunk)))
        forget(session, chunk)
        session.execute(delete(Contact).where(Contact.id.in_(chunk)))
    return len(ids)
