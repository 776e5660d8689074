"""Contacts by hand (`contacts add`, `contacts edit`): each change of lists recorded in
the consent history. Every check runs before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..db import Contact, MailingList, Membership, Suppression, column_length, utcnow
from ..errors import CitesmailError, known_names
from ..states import ConsentKind, ContactStatus
from .addresses import AddressError, address_hash, normalize_address
from .consent import COMMAND, record
from .contacts import find_contact
from .csvfile import FIELDS
from .lists import get_list, insert_ignoring_duplicates
from .measurement import Wish, set_consent

EDITABLE = tuple(name for name in FIELDS if name != "email")
# Why an address that left cannot be added back by hand.
_REFUSED = {
    ContactStatus.BOUNCED: "its mail server refused it for good (bounced)",
    ContactStatus.COMPLAINED: "they reported a message as spam (complained)",
    ContactStatus.UNSUBSCRIBED: "they unsubscribed; only their own confirmation can bring "
                                "them back",
}


def _checked_value(name: str, value: str) -> str | None:
    value = " ".join(value.split())
    if not name.startswith("attr."):
        limit = column_length(Contact, name)
        if len(value) > limit:
            raise CitesmailError(f"{name}: {len(value)} characters, at most {limit}",
                                 f"shorten the value of {name}")
    return value or None


def parse_setting(text: str) -> tuple[str, str | None]:
    """`field=value` of --set: a contact field or attr.NAME; an empty value clears it."""
    name, equals, value = text.partition("=")
    name = name.strip()
    if not equals:
        raise CitesmailError(f"cannot read --set '{text}'", "write field=value, e.g. "
                             "territory=Lyon (field= clears it)")
    if name == "attr." or (not name.startswith("attr.") and name not in EDITABLE):
        raise CitesmailError(f"unknown field '{name}' in --set '{text}'", known_names(
            "field", name, EDITABLE, ", and attr.NAME for an attribute"))
    return name, _checked_value(name, value)


def _lists(session: Session, names: Sequence[str]) -> list[MailingList]:
    return [get_list(session, name) for name in dict.fromkeys(names)]


def _join(session: Session, contact: Contact, lists: list[MailingList],
          consent: str | None) -> None:
    """Memberships, each with a `manual` event: the text given, else the list's
    description."""
    now = utcnow()
    insert_ignoring_duplicates(session, Membership, [
        {"list_id": chosen.id, "contact_id": contact.id, "added_at": now}
        for chosen in lists])
    for chosen in lists:
        record(session, [contact.id], ConsentKind.MANUAL, COMMAND, mailing_list=chosen,
               text=consent or chosen.description or str(ConsentKind.MANUAL), at=now)


def add_contact(session: Session, address: str, fields: dict[str, str | None],
                lists: Sequence[str], consent: str, measurement: bool | None = None) -> Contact:
    """A new active contact, on `lists`, with a `manual` event giving `consent` (one per
    list; one about no list when none is given); `measurement`: their consent to
    measurement, when given."""
    if not consent.strip():
        raise CitesmailError("no consent given", 'say why you may mail them: --consent "…"')
    try:
        checked = normalize_address(address)
    except AddressError as exc:
        raise CitesmailError(f"invalid address '{address}': {exc}") from None
    values = {name: _checked_value(name, value or "") for name, value in fields.items()}
    chosen = _lists(session, lists)
    if session.get(Suppression, address_hash(checked.key)) is not None:
        raise CitesmailError(f"{checked.email} was erased (suppression list): it is not "
                             "added back")
    found = session.scalar(select(Contact).where(Contact.email_key == checked.key))
    if found is not None:
        status = ContactStatus(found.status)
        if status in _REFUSED:
            raise CitesmailError(f"{found.email} is not added back: {_REFUSED[status]}")
        raise CitesmailError(f"{found.email} is already a contact ({status})",
                             f"change it with citesmail contacts edit {found.email}")
    contact = Contact(email=checked.email, email_key=checked.key, domain=checked.domain,
                      attributes={}, status=ContactStatus.ACTIVE, **values)
    session.add(contact)
    session.flush()
    if chosen:
        _join(session, contact, chosen, consent.strip())
    else:  # consent to the organisation's mail, on no list yet
        record(session, [contact.id], ConsentKind.MANUAL, COMMAND, text=consent.strip())
    if measurement is not None:
        set_consent(session, [Wish(contact.id, measurement, COMMAND)])
    return contact


@dataclass
class Edited:
    email: str
    changed: list[str]  # fields set
    added: list[str]  # lists joined
    removed: list[str]  # lists left
    measurement: bool | None = None  # consent to measurement, when it changed


def edit_contact(session: Session, address: str, settings: Sequence[str],
                 add: Sequence[str], remove: Sequence[str],
                 consent: str | None = None, measurement: bool | None = None) -> Edited:
    """Set fields, join and leave lists (a `manual` event for each list joined, a
    `list_unsubscribe` event for each list left), give or withdraw consent to
    measurement (an event when it changes)."""
    contact = find_contact(session, address)
    values = dict(parse_setting(text) for text in settings)
    joining, leaving = _lists(session, add), _lists(session, remove)
    both = {chosen.name for chosen in joining} & {chosen.name for chosen in leaving}
    if both:
        raise CitesmailError(f"list {', '.join(sorted(both))} both added and removed",
                             "give each list once")
    member_of = set(session.scalars(select(Membership.list_id)
                                    .where(Membership.contact_id == contact.id)))
    for chosen in leaving:
        if chosen.id not in member_of:
            raise CitesmailError(f"{contact.email} is not on list {chosen.name}",
                                 f"citesmail contacts show {contact.email} shows their lists")
    joining = [chosen for chosen in joining if chosen.id not in member_of]
    _set_fields(contact, values)
    _join(session, contact, joining, consent.strip() if consent else None)
    for chosen in leaving:
        session.execute(delete(Membership).where(Membership.contact_id == contact.id,
                                                 Membership.list_id == chosen.id))
        record(session, [contact.id], ConsentKind.LIST_UNSUBSCRIBE, COMMAND,
               mailing_list=chosen)
    if values or joining or leaving:
        contact.updated_at = utcnow()
    measured = measurement is not None and set_consent(
        session, [Wish(contact.id, measurement, COMMAND)]) > 0
    return Edited(contact.email, list(values), [c.name for c in joining],
                  [c.name for c in leaving], measurement if measured else None)


def _set_fields(contact: Contact, values: dict[str, str | None]) -> None:
    attributes = dict(contact.attributes or {})
    for name, value in values.items():
        if name.startswith("attr."):
            key = name.removeprefix("attr.")
            if value is None:
                attributes.pop(key, None)
            else:
                attributes[key] = value
        else:
            setattr(contact, name, value)
    contact.attributes = attributes  # a new dict: the JSON column sees the change
