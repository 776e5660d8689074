"""The preference centre's choices: the public lists a contact may join or leave, the
private lists they are on (shown, never offered), and a choice saved with its consent
events. Leaving everything is an unsubscribe (intake.py), not this."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from ..db import Contact, MailingList, Membership, utcnow
from ..errors import CitesmailError
from ..states import ConsentKind, ContactStatus
from .consent import record
from .lists import insert_ignoring_duplicates, label
from .measurement import Wish, set_consent

SOURCE = "serve: preference page"  # what the consent history says of these changes


@dataclass(frozen=True)
class Choice:
    name: str
    label: str
    description: str
    member: bool
    public: bool  # offered on the page; a private one is only shown to its members

    @property
    def consent_text(self) -> str:
        """What the page shows beside the box: the text a person agrees to by ticking it."""
        return f"{self.label} — {self.description}" if self.description else self.label


@dataclass(frozen=True)
class Preferences:
    contact_id: int
    email: str
    status: ContactStatus
    choices: list[Choice]  # the public lists, then the private ones the contact is on
    measured: bool  # agreed to have their own clicks and opens recorded

    @property
    def may_join(self) -> bool:
        """Only an active contact joins a list here: one who left comes back by
        confirming again, and a bounced or complained address never does."""
        return self.status == ContactStatus.ACTIVE


class NotActive(CitesmailError):
    """A contact who is not active asked to join a list."""


class BadChoice(CitesmailError):
    """A list that is not offered (unknown, or private) was chosen."""


@dataclass(frozen=True)
class Measurement:
    """The measurement box as the page showed it (`text`) and as it was sent."""

    given: bool
    text: str


@dataclass(frozen=True)
class Saved:
    added: list[str]
    removed: list[str]
    measurement_changed: bool = False


def preferences(session: Session, contact_id: int) -> Preferences | None:
    """The contact's choices; None for an unknown contact."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        return None
    member_of = select(Membership.list_id).where(Membership.contact_id == contact_id)
    lists = session.scalars(select(MailingList).where(or_(
        MailingList.public.is_(True), MailingList.id.in_(member_of)))
        .order_by(MailingList.public.desc(), MailingList.name)).all()
    mine = set(session.scalars(member_of))
    choices = [Choice(found.name, label(found), found.description, found.id in mine,
                      bool(found.public)) for found in lists]
    return Preferences(contact.id, contact.email, ContactStatus(contact.status), choices,
                       bool(contact.measurement_consent))


def save(session: Session, contact_id: int, chosen: Collection[str],
         measurement: Measurement | None = None, campaign: str | None = None) -> Saved:
    """Make the contact a member of exactly the public lists `chosen` (their private
    lists stay): a `list_subscribe` event for each list joined, with the text shown
    beside its box, a `list_unsubscribe` event for each list left (naming `campaign`,
    the one whose link led to the page); and, when the page offered it, their consent
    to measurement given or withdrawn (measurement.py)."""
    found = preferences(session, contact_id)
    if found is None:
        raise CitesmailError(f"no contact {contact_id}")
    public = {choice.name: choice for choice in found.choices if choice.public}
    unknown = sorted(set(chosen) - set(public))
    if unknown:
        raise BadChoice(f"no public list {', '.join(unknown)}",
                        "choose among the lists the page shows")
    adding = [c for c in public.values() if c.name in chosen and not c.member]
    leaving = [c for c in public.values() if c.member and c.name not in chosen]
    if adding and not found.may_join:
        raise NotActive(f"{found.email} is {found.status}: not added to "
                        f"{', '.join(c.name for c in adding)}")
    if measurement is not None and measurement.given and not found.measured \
            and not found.may_join:
        raise NotActive(f"{found.email} is {found.status}: measurement not given")
    now = utcnow()
    measured = measurement is not None and set_consent(
        session, [Wish(contact_id, measurement.given, SOURCE)], text=measurement.text,
        at=now) > 0
    if not adding and not leaving:
        return Saved([], [], measured)
    rows = {row.name: row for row in session.scalars(select(MailingList).where(
        MailingList.name.in_([c.name for c in adding + leaving])))}
    insert_ignoring_duplicates(session, Membership, [
        {"list_id": rows[c.name].id, "contact_id": contact_id, "added_at": now}
        for c in adding])
    for choice in adding:
        record(session, [contact_id], ConsentKind.LIST_SUBSCRIBE, SOURCE,
               mailing_list=rows[choice.name], text=choice.consent_text, at=now)
    for choice in leaving:
        session.execute(delete(Membership).where(Membership.contact_id == contact_id,
                                                 Membership.list_id == rows[choice.name].id))
        record(session, [contact_id], ConsentKind.LIST_UNSUBSCRIBE, SOURCE,
               mailing_list=rows[choice.name], at=now, campaign=campaign)
    contact = session.get(Contact, contact_id)
    assert contact is not None
    contact.updated_at = now
    return Saved([c.name for c in adding], [c.name for c in leaving], measured)
