"""`contacts export`: CSV that Excel opens with accents right and never runs as formulas."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db import Contact, MailingList, Membership
from .consent import Event, latest_grants
from .contacts import select_contacts
from .csvfile import spreadsheet_safe

COLUMNS = ("email", "first_name", "last_name", "organization", "role", "territory", "lang",
           "status", "lists", "consent_source", "consent_at", "measurement")
# Headers by language (--header-lang); `contacts import` recognises each of them.
HEADERS = {"en": COLUMNS,
           "fr": ("Courriel", "Prénom", "Nom", "Structure", "Fonction", "Territoire",
                  "Langue", "Statut", "Listes", "Source du consentement",
                  "Date du consentement", "Mesure")}
# The measurement column's values, in the headers' language (imports read both).
YES_NO = {"en": ("no", "yes"), "fr": ("non", "oui")}


def _lists_by_contact(session: Session, ids: list[int]) -> dict[int, list[str]]:
    query = (select(Membership.contact_id, MailingList.name)
             .join(MailingList, MailingList.id == Membership.list_id)
             .where(Membership.contact_id.in_(ids)).order_by(MailingList.name))
    found: dict[int, list[str]] = {}
    for contact_id, name in session.execute(query):
        found.setdefault(contact_id, []).append(name)
    return found


def consent_source(event: Event) -> str:
    """The kind and source of a consent event: 'import contacts.csv:12'."""
    return f"{event.kind} {event.source}".strip()


def _consent(event: Event | None) -> tuple[str, str]:
    """consent_source and consent_at: the latest event by which consent was given."""
    if event is None:
        return "", ""
    return consent_source(event), event.at.isoformat(timespec="seconds")


def _batches(session: Session, list_name: str | None,
             segment: str | None) -> Iterator[list[Contact]]:
    return select_contacts(session, list_name=list_name, segment=segment)


def export_contacts(session: Session, out: IO[str], *, list_name: str | None = None,
                    segment: str | None = None, delimiter: str = ";",
                    header_lang: str = "en") -> int:
    """Write the header then every contact; two streaming passes (attribute names, rows)."""
    attributes: dict[str, None] = {}
    for batch in _batches(session, list_name, segment):
        for contact in batch:
            attributes.update(dict.fromkeys(contact.attributes or {}))
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    # Attribute names are imported headers: as untrusted as the values.
    headers = (*HEADERS[header_lang], *attributes)
    writer.writerow([spreadsheet_safe(name) for name in headers])
    written = 0
    for batch in _batches(session, list_name, segment):
        ids = [c.id for c in batch]
        lists, grants = _lists_by_contact(session, ids), latest_grants(session, ids)
        for contact in batch:
            row = [contact.email, contact.first_name, contact.last_name, contact.organization,
                   contact.role, contact.territory, contact.lang, contact.status,
                   ", ".join(lists.get(contact.id, [])), *_consent(grants.get(contact.id)),
                   YES_NO[header_lang][bool(contact.measurement_consent)]]
            row += [(contact.attributes or {}).get(name) for name in attributes]
            writer.writerow([spreadsheet_safe(value or "") for value in row])
            written += 1
        session.expunge_all()
    return written
