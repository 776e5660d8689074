"""Consent to measurement: a contact agrees (or no longer agrees) to have their own clicks
and opens recorded ([tracking] "individual"). Every change goes through `set_consent`,
with a `measurement_given` or `measurement_withdrawn` event naming its source and the
text shown; a withdrawal deletes the contact's recorded clicks and opens at once.

A box ticked on a sign-up form is a `measurement_asked` event: the consent is given when
the sign-up is confirmed (`confirm_asked`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from ..config import TrackingSettings
from ..db import ClickEvent, ConsentEvent, ConsentText, Contact, OpenEvent, utcnow
from ..render.labels import labels_for
from ..states import ConsentKind
from .consent import cut_source, record, store_text

_CHUNK = 500  # ids per statement: within every database's limit on parameters
_STEPS = (ConsentKind.MEASUREMENT_ASKED, ConsentKind.MEASUREMENT_GIVEN,
          ConsentKind.MEASUREMENT_WITHDRAWN)


@dataclass(frozen=True)
class Wish:
    """What one contact said about measurement, and where it was said (file:line, a
    command, a page)."""

    contact_id: int
    given: bool
    source: str


def consent_text(tracking: TrackingSettings, lang: str, org: str) -> str:
    """The words beside the box: [tracking] consent_text, else a sentence in `lang`
    saying what is measured and how long it is kept."""
    if tracking.consent_text:
        return tracking.consent_text
    t = labels_for(lang)
    what = {(True, True): "measurement_both", (True, False): "measurement_clicks",
            (False, True): "measurement_opens"}.get(
        (tracking.clicks == "individual", tracking.opens == "individual"),
        "measurement_both")
    days = math.ceil(tracking.retention.total_seconds() / 86400)
    return t["measurement_consent"].format(org=org, what=t[what], days=days)


def set_consent(session: Session, wishes: Sequence[Wish], *, text: str | None = None,
                at: datetime | None = None) -> int:
    """Set each contact's consent to measurement; an event for each one that changes
    (with `text`, the words they agreed to or left), none for the others: saying the
    same twice records it once. Returns how many changed."""
    now = at or utcnow()
    wanted = {wish.contact_id: wish for wish in wishes}
    ids = sorted(wanted)
    changing: list[Wish] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        changing += [wanted[contact_id] for contact_id, current in session.execute(
            select(Contact.id, Contact.measurement_consent).where(Contact.id.in_(chunk))
            .with_for_update()) if bool(current) != wanted[contact_id].given]
    if not changing:
        return 0
    for given in (True, False):
        changed = [wish.contact_id for wish in changing if wish.given == given]
        for start in range(0, len(changed), _CHUNK):
            session.execute(update(Contact).where(Contact.id.in_(changed[start:start + _CHUNK]))
                            .values(measurement_consent=given, updated_at=now))
    forget_measured(session, [wish.contact_id for wish in changing if not wish.given])
    digest = store_text(session, text) if text is not None else None
    session.execute(insert(ConsentEvent), [
        {"contact_id": wish.contact_id, "source": cut_source(wish.source), "at": now,
         "kind": str(ConsentKind.MEASUREMENT_GIVEN if wish.given
                     else ConsentKind.MEASUREMENT_WITHDRAWN),
         "list_id": None, "list_name": None, "consent_text_hash": digest}
        for wish in changing])
    return len(changing)


def forget_measured(session: Session, contact_ids: Sequence[int]) -> None:
    """Delete the contacts' recorded clicks and opens (the counts per link stay)."""
    for start in range(0, len(contact_ids), _CHUNK):
        chunk = list(contact_ids[start:start + _CHUNK])
        session.execute(delete(ClickEvent).where(ClickEvent.contact_id.in_(chunk)))
        session.execute(delete(OpenEvent).where(OpenEvent.contact_id.in_(chunk)))


def ask(session: Session, contact_id: int, source: str, text: str, at: datetime) -> None:
    """The box ticked on a sign-up form: recorded, given only at confirmation."""
    record(session, [contact_id], ConsentKind.MEASUREMENT_ASKED, source, text=text, at=at)


def asked(session: Session, contact_id: int) -> str | None:
    """The text of the box ticked on the contact's latest sign-up form, when nothing
    about measurement happened since; else None."""
    latest = session.execute(
        select(ConsentEvent.kind, ConsentEvent.at, ConsentText.text)
        .outerjoin(ConsentText, ConsentText.hash == ConsentEvent.consent_text_hash)
        .where(ConsentEvent.contact_id == contact_id,
               ConsentEvent.kind.in_([str(kind) for kind in _STEPS]))
        .order_by(ConsentEvent.at.desc(), ConsentEvent.id.desc()).limit(1)).first()
    if latest is None or latest.kind != ConsentKind.MEASUREMENT_ASKED:
        return None
    signed_up = session.scalar(
        select(ConsentEvent.at).where(ConsentEvent.contact_id == contact_id,
                                      ConsentEvent.kind == ConsentKind.FORM_SIGNUP)
        .order_by(ConsentEvent.at.desc()).limit(1))
    if signed_up is not None and signed_up > latest.at:  # a later form left it unticked
        return None
    return latest.text or ""


def confirm_asked(session: Session, contact_id: int, source: str, at: datetime) -> bool:
    """A confirmed sign-up whose form had the box ticked: consent given, with the text
    that was shown. True when it was."""
    text = asked(session, contact_id)
    if text is None:
        return False
    return set_consent(session, [Wish(contact_id, True, source)], text=text, at=at) > 0
