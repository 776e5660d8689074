"""Contacts as messages address them: the address as it goes on the wire (the domain
in its ASCII form) with the names the templates fill in."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db import Contact
from ..errors import CitesmailError
from ..message import Recipient
from ..states import ContactStatus
from .contacts import find_contact
from .lists import lists_of, segment_lists
from .segments import Definition, get_segment, stream


def wire_address(email: str, ascii_domain: str) -> str:
    return f"{email.rpartition('@')[0]}@{ascii_domain}"


def recipient(contact_id: int, email: str, ascii_domain: str, first_name: str | None,
              last_name: str | None, organization: str | None, *, lists: str = "") -> Recipient:
    return Recipient(wire_address(email, ascii_domain), first_name or "", last_name or "",
                     organization or "", contact_id, lists)


def find_recipient(session: Session, address: str) -> Recipient:
    """The stored contact with this address (CitesmailError when there is none)."""
    c = find_contact(session, address)
    return recipient(c.id, c.email, c.domain, c.first_name, c.last_name, c.organization)


def recipients(session: Session, definition: Definition,
               batch: int = 5000) -> Iterator[list[Recipient]]:
    """A segment's recipients in batches, in id order, each with the public lists of
    the segment they are on (one query per batch)."""
    columns = (Contact.id, Contact.email, Contact.domain, Contact.first_name,
               Contact.last_name, Contact.organization)
    chosen = segment_lists(session, definition.lists)
    for rows in stream(session, definition, columns=columns, batch=batch):
        on = lists_of(session, [row[0] for row in rows], chosen)
        yield [recipient(*row, lists=on.get(row[0], "")) for row in rows]


def active_addresses(session: Session, limit: int) -> list[str]:
    """The first active contacts' addresses, in id order."""
    return list(session.scalars(select(Contact.email)
                                .where(Contact.status == ContactStatus.ACTIVE)
                                .order_by(Contact.id).limit(limit)))


def first_recipient(session: Session, segment: str) -> Recipient | None:
    """The first recipient of a saved segment (None: no such segment, or nobody in it)."""
    try:
        definition = get_segment(session, segment)[1]
    except CitesmailError:
        return None
    for batch in recipients(session, definition, batch=1):
        return batch[0]
    return None
