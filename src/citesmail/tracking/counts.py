"""Measurement lines of the intake written into the database, in the applier's
transaction: clicks added to `click_counts` (one upsert per campaign, link and UTC hour),
a consenting contact's clicks and opens into `click_events` / `open_events`, web-view
visits into `web_view_counts`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ..db import (
    ClickCount,
    ClickEvent,
    Contact,
    Delivery,
    OpenEvent,
    Send,
    WebViewCount,
    is_postgresql,
)

# A click this soon after its message was delivered is a scanner's (a mail gateway that
# follows every link as the message arrives), not the reader's.
SOON_AFTER_DELIVERY = timedelta(seconds=5)


@dataclass(frozen=True)
class Hit:
    """One click, open or web-view visit, as the intake kept it."""

    campaign: str
    when: datetime
    number: int = 0  # the link's (clicks)
    contact_id: int = 0  # a consenting contact's token named them; 0: nobody
    automated: bool = False


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _upsert(session: Session, table: Any, keys: list[str], rows: list[dict[str, Any]],
            added: list[str]) -> None:
    """Insert the rows, or add their `added` columns to those already there."""
    if not rows:
        return
    # Imported here: the two dialects cost every command that imports this module
    # (`send` does) about 20 ms of start-up, and only applying counts needs them.
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if is_postgresql(session) else sqlite
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=keys,
        set_={name: getattr(table.c, name) + getattr(statement.excluded, name)
              for name in added})
    session.execute(statement, rows)


def _consenting(session: Session, contact_ids: set[int]) -> set[int]:
    """Those who still agree (and still exist): a withdrawal since the send holds."""
    if not contact_ids:
        return set()
    return set(session.scalars(select(Contact.id).where(
        Contact.id.in_(sorted(contact_ids)), Contact.measurement_consent.is_(True))))


def _delivered(session: Session, clicks: Sequence[Hit]) -> dict[tuple[str, int], datetime]:
    """When each named person's message of each campaign was delivered."""
    named = {(hit.campaign, hit.contact_id) for hit in clicks if hit.contact_id}
    if not named:
        return {}
    query = (select(Send.campaign, Delivery.contact_id, Delivery.sent_at)
             .join(Send, Send.id == Delivery.send_id)
             .where(Send.campaign.in_(sorted({c for c, _ in named})),
                    Delivery.contact_id.in_(sorted({i for _, i in named})),
                    Delivery.sent_at.is_not(None)))
    return {(campaign, contact): sent for campaign, contact, sent in session.execute(query)
            if contact is not None and sent is not None}


def _too_soon(hit: Hit, delivered: dict[tuple[str, int], datetime]) -> bool:
    sent = delivered.get((hit.campaign, hit.contact_id))
    return sent is not None and timedelta(0) <= hit.when - sent < SOON_AFTER_DELIVERY


def add_clicks(session: Session, clicks: Sequence[Hit]) -> None:
    delivered = _delivered(session, clicks)
    people: Counter[tuple[str, int, datetime]] = Counter()
    machines: Counter[tuple[str, int, datetime]] = Counter()
    events = []
    agreed = _consenting(session, {hit.contact_id for hit in clicks if hit.contact_id})
    for hit in clicks:
        automated = hit.automated or _too_soon(hit, delivered)
        key = (hit.campaign, hit.number, _hour(hit.when))
        (machines if automated else people)[key] += 1
        if hit.contact_id in agreed:
            events.append({"contact_id": hit.contact_id, "campaign": hit.campaign,
                           "number": hit.number, "automated": automated, "at": hit.when})
    rows = [{"campaign": c, "number": n, "hour": h, "clicks": people[(c, n, h)],
             "automated": machines[(c, n, h)]}
            for c, n, h in sorted(people.keys() | machines.keys())]
    _upsert(session, ClickCount.__table__, ["campaign", "number", "hour"], rows,
            ["clicks", "automated"])
    if events:
        session.execute(insert(ClickEvent), events)


def add_opens(session: Session, opens: Sequence[Hit]) -> None:
    agreed = _consenting(session, {hit.contact_id for hit in opens})
    rows = [{"contact_id": hit.contact_id, "campaign": hit.campaign, "at": hit.when}
            for hit in opens if hit.contact_id in agreed]
    if rows:
        session.execute(insert(OpenEvent), rows)


def add_web_views(session: Session, views: Sequence[Hit]) -> None:
    counted = Counter((hit.campaign, _hour(hit.when)) for hit in views)
    rows = [{"campaign": campaign, "hour": hour, "views": n}
            for (campaign, hour), n in sorted(counted.items())]
    _upsert(session, WebViewCount.__table__, ["campaign", "hour"], rows, ["views"])
