"""Contacts one by one: show, unsubscribe, erase (with their consent history); and the
contacts of a list or segment."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, select, true, update
from sqlalchemy.orm import Session

from ..db import Contact, Delivery, MailingList, Membership, Send, Suppression, utcnow
from ..errors import CitesmailError, Problem
from ..folding import fold
from ..states import ContactStatus
from .addresses import AddressError, address_hash, normalize_address
from .consent import COMMAND, forget
from .lists import get_list, insert_ignoring_duplicates
from .segments import get_segment, stream
from .status import leave


def _keys(addresses: tuple[str, ...] | list[str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    problems = []
    for text in addresses:
        try:
            keys[normalize_address(text).key] = text
        except AddressError as exc:
            problems.append(Problem(f"invalid address '{text}': {exc}"))
    if problems:
        raise CitesmailError.from_problems(problems)
    return keys


def find_contacts(session: Session, addresses: tuple[str, ...] | list[str],
                  hint: str = "nothing was changed") -> list[Contact]:
    """Every contact named, or an error listing the unknown ones (nothing is changed)."""
    keys = _keys(addresses)
    found = list(session.scalars(select(Contact).where(Contact.email_key.in_(list(keys)))))
    order = {key: position for position, key in enumerate(keys)}
    found.sort(key=lambda contact: order[contact.email_key])  # as they were named
    missing = set(keys) - {c.email_key for c in found}
    if missing:
        raise CitesmailError.from_problems([
            Problem(f"no contact with address {keys[k]}", hint) for k in sorted(missing)])
    return found


def find_contact(session: Session, address: str) -> Contact:
    return find_contacts(session, [address],
                         "check the spelling; citesmail contacts list shows them all")[0]


def lists_of(session: Session, contact_id: int) -> list[str]:
    query = (select(MailingList.name).join(Membership, Membership.list_id == MailingList.id)
             .where(Membership.contact_id == contact_id).order_by(MailingList.name))
    return list(session.scalars(query))


def sends_of(session: Session, contact_id: int) -> list[tuple[str, str, datetime | None]]:
    """(campaign, state, sent at) for every send that included the contact."""
    query = (select(Send.campaign, Delivery.state, Delivery.sent_at)
             .join(Send, Send.id == Delivery.send_id)
             .where(Delivery.contact_id == contact_id).order_by(Send.created_at))
    return [(campaign, state, sent_at) for campaign, state, sent_at in session.execute(query)]


def unsubscribe(session: Session, addresses: tuple[str, ...]) -> list[tuple[str, str]]:
    """(address, status before) of each contact named; the active ones leave."""
    contacts = find_contacts(session, addresses)
    before = [(c.email, c.status) for c in contacts]
    leave(session, [c.id for c in contacts], ContactStatus.UNSUBSCRIBED, source=COMMAND)
    return before


def erase(session: Session, addresses: tuple[str, ...]) -> list[str]:
    """Delete the contacts' personal data; keep a hash of each address as a suppression."""
    contacts = find_contacts(session, addresses)
    insert_ignoring_duplicates(session, Suppression, [
        {"address_hash": address_hash(c.email_key), "reason": "erased",
         "created_at": utcnow()} for c in contacts])
    ids = [c.id for c in contacts]
    # The send log keeps its rows (counts stay right) without anything personal.
    session.execute(update(Delivery).where(Delivery.contact_id.in_(ids)).values(
        contact_id=None, email="", first_name="", last_name="", organization=""))
    session.execute(delete(Membership).where(Membership.contact_id.in_(ids)))
    forget(session, ids)
    session.execute(delete(Contact).where(Contact.id.in_(ids)))
    return [c.email for c in contacts]


def select_contacts(session: Session, *, list_name: str | None = None,
                    segment: str | None = None,
                    search: str | None = None) -> Iterator[list[Contact]]:
    """Contacts in batches, by id: a segment's (active only), on a list, or everyone;
    given both, those of the segment on the list. `search` keeps those whose names,
    address or organisation hold the text, case and accents ignored."""
    definition = get_segment(session, segment)[1] if segment is not None else None
    extra: list[ColumnElement[bool]] = []
    if list_name is not None:
        list_id = get_list(session, list_name).id
        extra.append(Contact.id.in_(select(Membership.contact_id)
                                    .where(Membership.list_id == list_id)))
    if search is not None:
        extra.append(Contact.search_key.contains(fold(search), autoescape=True))
    yield from stream(session, definition, extra=and_(true(), *extra))
