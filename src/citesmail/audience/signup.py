"""Sign-ups (double opt-in): a form records a pending contact and queues a confirmation;
the confirmation link makes the contact active and a member of the chosen lists.

Whoever posts the form learns nothing: every accepted sign-up gets the same answer, and
for an address that bounced, complained or was erased, or that was sent a confirmation
less than `RESEND_AFTER` ago, nothing is stored or queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db import Contact, MailingList, Membership, OutgoingMail, Suppression, column_length
from ..errors import CitesmailError
from ..states import ConsentKind, ContactStatus, OutgoingKind
from .addresses import AddressError, address_hash, normalize_address
from .consent import record
from .contacts import find_contact
from .lists import insert_ignoring_duplicates
from .measurement import ask, confirm_asked

RESEND_AFTER = timedelta(minutes=10)  # at most one confirmation per address this often
NAME_FIELDS = ("first_name", "last_name", "organization")
# Never mailed again, whatever a form says.
_GONE = (ContactStatus.BOUNCED, ContactStatus.COMPLAINED)


class FieldError(CitesmailError):
    """A field of a sign-up that cannot be taken; `field` names it."""

    def __init__(self, field: str, message: str, hint: str = "") -> None:
        super().__init__(message, hint)
        self.field = field


@dataclass(frozen=True)
class SignUp:
    email: str
    names: dict[str, str]  # first_name, last_name, organization (empty: not given)
    lists: Sequence[str]  # the names of the lists chosen
    source: str  # the form and where it was posted from
    consent_text: str
    lang: str
    # The words of the measurement box when it was ticked (given at confirmation).
    measurement_text: str | None = None


def checked_address(raw: str) -> tuple[str, str, str]:
    """(email, key, domain) of an address typed in a form, or a FieldError."""
    try:
        address = normalize_address(raw)
    except AddressError as exc:
        raise FieldError("email", f"invalid address: {exc}") from None
    return address.email, address.key, address.domain


def chosen_lists(session: Session, names: Sequence[str]) -> list[MailingList]:
    """The public lists named; an unknown or private name is refused."""
    if not names:
        raise FieldError("lists", "no list chosen", "tick at least one list")
    found = {chosen.name: chosen for chosen in session.scalars(
        select(MailingList).where(MailingList.name.in_(list(names)),
                                  MailingList.public.is_(True)))}
    for name in names:
        if name not in found:
            raise FieldError("lists", f"no public list named {name!r}")
    return [found[name] for name in dict.fromkeys(names)]


def _names(values: dict[str, str]) -> dict[str, str | None]:
    checked: dict[str, str | None] = {}
    for name in NAME_FIELDS:
        value = " ".join(values.get(name, "").split())
        limit = column_length(Contact, name)
        if len(value) > limit:
            raise FieldError(name, f"{len(value)} characters, at most {limit}")
        checked[name] = value or None
    return checked


def recently_queued(session: Session, contact_id: int, now: datetime) -> bool:
    return session.scalar(select(OutgoingMail.id).where(
        OutgoingMail.contact_id == contact_id,
        OutgoingMail.created_at > now - RESEND_AFTER).limit(1)) is not None


def queue(session: Session, contact_id: int, kind: OutgoingKind, list_ids: list[int],
          lang: str, now: datetime) -> OutgoingMail:
    row = OutgoingMail(contact_id=contact_id, kind=kind, lists=sorted(set(list_ids)),
                       lang=lang, attempts=0, next_attempt_at=now, created_at=now)
    session.add(row)
    session.flush()
    return row


def sign_up(session: Session, form: SignUp, now: datetime) -> OutgoingMail | None:
    """Record a form's sign-up: the queued confirmation, or None when nothing may be
    stored (the caller answers the same either way). FieldError for bad input."""
    email, key, domain = checked_address(form.email)
    names = _names(form.names)
    lists = chosen_lists(session, form.lists)
    if session.get(Suppression, address_hash(key)) is not None:
        return None
    contact = session.scalar(select(Contact).where(Contact.email_key == key)
                             .with_for_update())
    if contact is not None:
        if contact.status in _GONE or recently_queued(session, contact.id, now):
            return None
        if contact.status == ContactStatus.PENDING:
            contact.updated_at = now  # the purge waits from the latest sign-up
    else:
        contact = Contact(email=email, email_key=key, domain=domain, attributes={},
                          status=ContactStatus.PENDING, created_at=now, updated_at=now,
                          **names)
        session.add(contact)
        session.flush()
    for chosen in lists:
        record(session, [contact.id], ConsentKind.FORM_SIGNUP, form.source,
               mailing_list=chosen, text=form.consent_text, at=now)
    if form.measurement_text is not None:
        ask(session, contact.id, form.source, form.measurement_text, now)
    return queue(session, contact.id, OutgoingKind.SIGNUP, [c.id for c in lists],
                 form.lang, now)


class Confirmed(StrEnum):
    DONE = "done"  # active now, or already
    GONE = "gone"  # no such contact any more (purged, erased)
    REFUSED = "refused"  # bounced or complained: never re-activated


def confirm(session: Session, contact_id: int, list_ids: Sequence[int], source: str,
            consent_text: str, now: datetime) -> Confirmed:
    """Make the contact active and a member of the lists; each list joined gets an event
    (a `confirmation`, or a `resubscription` for someone who had unsubscribed), and the
    consent to measurement asked on the form is given. Twice is harmless: nothing new is
    joined or recorded."""
    contact = session.get(Contact, contact_id, with_for_update=True)
    if contact is None:
        return Confirmed.GONE
    status = ContactStatus(contact.status)
    if status in _GONE:
        return Confirmed.REFUSED
    lists = list(session.scalars(select(MailingList).where(MailingList.id.in_(list_ids))
                                 .order_by(MailingList.name)))
    member_of = set(session.scalars(select(Membership.list_id)
                                    .where(Membership.contact_id == contact.id)))
    joining = [chosen for chosen in lists if chosen.id not in member_of]
    kind = ConsentKind.RESUBSCRIPTION if status == ContactStatus.UNSUBSCRIBED \
        else ConsentKind.CONFIRMATION
    insert_ignoring_duplicates(session, Membership, [
        {"list_id": chosen.id, "contact_id": contact.id, "added_at": now}
        for chosen in joining])
    for chosen in joining:
        record(session, [contact.id], kind, source, mailing_list=chosen,
               text=consent_text, at=now)
    if status != ContactStatus.ACTIVE:
        if not joining:  # about no list: a resubscription, or lists removed meanwhile
            record(session, [contact.id], kind, source, text=consent_text, at=now)
        contact.status = ContactStatus.ACTIVE
    if joining or status != ContactStatus.ACTIVE:
        contact.updated_at = now
    confirm_asked(session, contact.id, source, now)
    return Confirmed.DONE


def resubscribe(session: Session, address: str, lang: str, now: datetime) -> OutgoingMail:
    """Queue a confirmation for a contact who left (or never confirmed); the contact stays
    as it is until the link is followed."""
    contact = find_contact(session, address)
    status = ContactStatus(contact.status)
    if status in _GONE:
        raise CitesmailError(f"{contact.email} is {status}: it is never mailed again")
    if status == ContactStatus.ACTIVE:
        raise CitesmailError(f"{contact.email} is already active: nothing to confirm")
    if recently_queued(session, contact.id, now):
        raise CitesmailError(f"{contact.email} was sent a confirmation less than "
                             f"{int(RESEND_AFTER.total_seconds() // 60)} minutes ago",
                             "wait, then try again")
    return queue(session, contact.id, OutgoingKind.RESUBSCRIBE, [], lang, now)

