"""A send's life in the `sends` table: stored (scheduled, or started at once), its
recipients snapshotted into the send log, resumed, finished; and what the commands and
the worker ask about sends. The SQL of a run (claim, record, settle) is in store.py."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import ColumnElement, func, insert, literal, select, update
from sqlalchemy.orm import Session

from ..audience.recipients import recipients
from ..audience.segments import Definition, get_segment, left_out, matching
from ..config import Settings
from ..db import Contact, Database, Delivery, Segment, Send, changed, is_postgresql, utcnow
from ..errors import CitesmailError
from ..message import Audience, MessageTemplate, Recipient, Renderable
from ..states import NOT_STARTED, DeliveryState, SendState
from ..tracking.links import store_links
from ..verp import TEST_SEND, ReturnPath
from .transports import Outcome, make_transport


@dataclass(frozen=True)
class StoredCampaign:
    """A campaign as its send stored it."""

    slug: str
    subject: str
    html: str
    text: str
    slots: tuple[tuple[str, str], ...]
    calendar: str | None = None
    segment: str | None = None  # the segment the send goes to

    @classmethod
    def of(cls, send: Send) -> StoredCampaign:
        return cls(send.campaign, send.subject, send.html, send.text,
                   tuple((field_, default) for field_, default in send.slots), send.calendar,
                   send.segment)


def audience_of(db: Database | None, segment: str | None) -> Audience | None:
    """The segment as messages name it (List-Id, Feedback-ID): its name, and its title
    when the database still has it."""
    if not segment:
        return None
    if db is None:
        return Audience(segment)
    with db.session(write=False) as session:
        definition = session.scalar(select(Segment.definition).where(Segment.name == segment))
    title = Definition.from_json(definition).title if definition is not None else ""
    return Audience(segment, title)


@dataclass(frozen=True)
class SendInfo:
    """A send as the commands show it."""

    id: int
    campaign: str
    segment: str | None
    state: SendState
    source_hash: str
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    recipients: int  # rows in its send log: 0 until it starts

    @classmethod
    def of(cls, session: Session, send: Send) -> SendInfo:
        rows = session.scalar(select(func.count()).where(Delivery.send_id == send.id)) or 0
        return cls(send.id, send.campaign, send.segment, SendState(send.state),
                   send.source_hash, send.scheduled_at, send.started_at, send.finished_at,
                   rows)


@dataclass(frozen=True)
class Prepared:
    send_id: int
    total: int
    resumed: bool
    changed: bool  # the campaign file changed since the send started


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def send_tests(settings: Settings, rendered: Renderable, recipients: list[Recipient], *,
               audience: Audience | None = None) -> list[tuple[str, Outcome]]:
    """Test messages (subject prefixed [TEST]) to the given people; nothing is logged.
    With VERP, their envelope sender names send 0 (no send log)."""
    template = MessageTemplate(rendered, settings, subject_prefix="[TEST] ",
                               audience=audience)
    transport = make_transport(settings)
    envelope = ReturnPath(settings)
    try:
        return [(r.email, transport.send(envelope.sender(r.contact_id, TEST_SEND), r.email,
                                         template.build(r)))
                for r in recipients]
    finally:
        transport.close()


# -- the commands' questions --------------------------------------------------------


def find_send(db: Database, campaign: str) -> SendInfo | None:
    with db.session(write=False) as session:
        send = session.scalar(select(Send).where(Send.campaign == campaign))
        return SendInfo.of(session, send) if send is not None else None


def list_sends(db: Database, *, campaign: str | None = None,
               scheduled: bool = False) -> list[SendInfo]:
    """Sends in the order they were made (scheduled ones: in the order of their time)."""
    query = select(Send)
    if campaign:
        query = query.where(Send.campaign == campaign)
    if scheduled:
        query = query.where(Send.scheduled_at.is_not(None)).order_by(Send.scheduled_at)
    else:
        query = query.order_by(Send.created_at)
    with db.session(write=False) as session:
        return [SendInfo.of(session, send) for send in session.scalars(query)]


@dataclass(frozen=True)
class Problem:
    """A recipient's last error in a send."""

    email: str
    state: str
    code: int | None
    error: str


def last_errors(db: Database, send_id: int, limit: int = 5) -> list[Problem]:
    query = (select(Delivery.email, Delivery.state, Delivery.last_code, Delivery.last_error)
             .where(Delivery.send_id == send_id, Delivery.last_error.is_not(None))
             .order_by(Delivery.updated_at.desc()).limit(limit))
    with db.session(write=False) as session:
        return [Problem(email, state, code, error or "")
                for email, state, code, error in session.execute(query)]


@dataclass(frozen=True)
class Row:
    """A recipient's row in a send, as `status --state` lists it."""

    email: str
    state: str
    code: int | None
    answer: str  # the server's last answer (or why it did not go)
    updated_at: datetime | None


def rows_in_state(db: Database, send_id: int, state: DeliveryState) -> list[Row]:
    """The send's rows in `state`, in the order of the snapshot."""
    query = (select(Delivery.email, Delivery.state, Delivery.last_code, Delivery.last_error,
                    Delivery.updated_at)
             .where(Delivery.send_id == send_id, Delivery.state == state)
             .order_by(Delivery.id))
    with db.session(write=False) as session:
        return [Row(email, row_state, code, answer or "", updated)
                for email, row_state, code, answer, updated in session.execute(query)]


def counts(session: Session, send_id: int) -> dict[str, int]:
    """Rows per state, every state named (0 when none)."""
    query = (select(Delivery.state, func.count()).where(Delivery.send_id == send_id)
             .group_by(Delivery.state))
    found = {str(state): 0 for state in DeliveryState}
    found.update({state: n for state, n in session.execute(query)})
    return found


def send_counts(db: Database, send_id: int) -> dict[str, int]:
    with db.session(write=False) as session:
        return counts(session, send_id)


def summary(found: dict[str, int]) -> str:
    """'sent 4, failed 1': the states that have rows."""
    return ", ".join(f"{state} {n}" for state, n in found.items() if n) or "no recipients"


# -- starting and resuming ------------------------------------------------------------


def _store(send: Send, rendered: Renderable, segment: str | None, source: str) -> None:
    """The rendered campaign, as this send will mail it whatever the file becomes."""
    send.segment, send.subject, send.html, send.text = (
        segment, rendered.subject, rendered.html, rendered.text)
    send.slots, send.source_hash = [list(slot) for slot in rendered.slots], source
    send.calendar = rendered.calendar


def prepare_send(db: Database, rendered: Renderable, segment: str | None,
                 definition: Definition | None, source: str) -> Prepared:
    """Start the send (snapshot of campaign and recipients) or find the one started
    (`definition` may then be None: a send under way keeps its recipients)."""
    with db.session() as session:
        found = session.scalar(select(Send).where(Send.campaign == rendered.slug))
        if found is not None and found.state in NOT_STARTED:
            when = f"{found.scheduled_at:%Y-%m-%d %H:%M}" if found.scheduled_at else "?"
            raise CitesmailError(
                f"'{rendered.slug}' is {found.state} for {when} UTC",
                f"citesmail unschedule {rendered.slug} first, to send it now")
        if found is not None:
            return _resume(session, found, source)
        if definition is None:  # it was there a moment ago (unscheduled meanwhile?)
            raise CitesmailError(f"the send of '{rendered.slug}' is gone",
                                 "check citesmail status, then run the command again")
        send = Send(campaign=rendered.slug, state=SendState.RUNNING, started_at=utcnow())
        _store(send, rendered, segment, source)
        store_links(session, rendered.slug, rendered.html, rendered.text)
        session.add(send)
        session.flush()
        total = _snapshot(session, send.id, definition)
        return Prepared(send.id, total, False, False)


def _resume(session: Session, found: Send, source: str) -> Prepared:
    total = session.scalar(select(func.count()).where(Delivery.send_id == found.id))
    return Prepared(found.id, total or 0, True, found.source_hash != source)


def start_scheduled(db: Database, campaign: str) -> Prepared | None:
    """The scheduled send of `campaign` begins: its recipients are snapshotted now.
    A send already running is resumed; one done (or missed) starts nothing."""
    with db.session() as session:
        send = session.scalar(select(Send).where(Send.campaign == campaign))
        if send is None or send.state in {SendState.DONE, SendState.MISSED}:
            return None
        if send.state == SendState.RUNNING:
            return _resume(session, send, send.source_hash)
        definition = get_segment(session, send.segment or "")[1]
        total = _snapshot(session, send.id, definition)
        send.state, send.started_at = SendState.RUNNING, utcnow()
        return Prepared(send.id, total, False, False)


def _local_part(session: Session) -> ColumnElement[str]:
    """Contact.email up to its '@' (a stored address has one: quoted local parts are
    refused at import), in the database's own words."""
    at = (func.strpos if is_postgresql(session) else func.instr)(Contact.email, "@")
    return func.substr(Contact.email, 1, at - 1)


def _snapshot(session: Session, send_id: int, definition: Definition) -> int:
    """One INSERT ... SELECT: the recipients never pass through Python."""
    wire = _local_part(session) + "@" + Contact.domain
    query = (select(literal(send_id), Contact.id, wire, func.coalesce(Contact.first_name, ""),
                    func.coalesce(Contact.last_name, ""),
                    func.coalesce(Contact.organization, ""),
                    literal(str(DeliveryState.QUEUED)), literal(0))
             .where(matching(session, definition)).order_by(Contact.id))
    columns = ("send_id", "contact_id", "email", "first_name", "last_name", "organization",
               "state", "attempts")
    session.execute(insert(Delivery).from_select(columns, query))
    # Counted, not taken from rowcount: psycopg reports -1 for this INSERT ... SELECT.
    return session.scalar(select(func.count()).where(Delivery.send_id == send_id)) or 0


def requeue_unknown(db: Database, send_id: int) -> int:
    """Queue the `unknown` rows again; a finished send runs again for them."""
    with db.session() as session:
        requeued = changed(session,
            update(Delivery).where(Delivery.send_id == send_id,
                                   Delivery.state == DeliveryState.UNKNOWN)
            .values(state=DeliveryState.QUEUED, updated_at=utcnow()))
        if requeued:
            session.execute(update(Send).where(Send.id == send_id,
                                               Send.state == SendState.DONE)
                            .values(state=SendState.RUNNING, finished_at=None))
        return requeued


# -- scheduled sends ------------------------------------------------------------------


def store_scheduled(db: Database, rendered: Renderable, segment: str, source: str,
                    at: datetime) -> bool:
    """Store the campaign to send at `at` (UTC); True when it replaced a schedule."""
    with db.session() as session:
        send = session.scalar(select(Send).where(Send.campaign == rendered.slug))
        replaced = send is not None
        if send is not None and send.state not in NOT_STARTED:
            raise CitesmailError(f"'{rendered.slug}' has already been sent ({send.state})",
                                 f"see citesmail status {rendered.slug}")
        if send is None:
            send = Send(campaign=rendered.slug)
            session.add(send)
        _store(send, rendered, segment, source)
        store_links(session, rendered.slug, rendered.html, rendered.text)
        send.state, send.scheduled_at, send.created_at = SendState.SCHEDULED, at, utcnow()
    return replaced


def cancel_scheduled(db: Database, campaign: str) -> None:
    with db.session() as session:
        send = session.scalar(select(Send).where(Send.campaign == campaign))
        if send is None or send.state not in NOT_STARTED:
            state = "not scheduled" if send is None else f"already {send.state}"
            raise CitesmailError(f"'{campaign}' is {state}", "see citesmail schedules")
        session.delete(send)


def mark_missed(db: Database, campaign: str) -> None:
    """Its time passed while no worker ran: it is never sent late."""
    with db.session() as session:
        session.execute(update(Send).where(Send.campaign == campaign,
                                           Send.state == SendState.SCHEDULED)
                        .values(state=SendState.MISSED))


def running_campaigns(db: Database) -> list[str]:
    with db.session(write=False) as session:
        return list(session.scalars(select(Send.campaign)
                                    .where(Send.state == SendState.RUNNING)))


@dataclass(frozen=True)
class DryRun:
    built: int  # messages
    size: int  # bytes in all
    left_out: dict[str, int]  # contacts the segment chooses that are not active, by status


def dry_run(db: Database, settings: Settings, rendered: Renderable, definition: Definition,
            each: Callable[[Recipient], None] | None = None, *,
            segment: str | None = None) -> DryRun:
    """Build every message of the segment (`each` is told every recipient); send
    nothing, log nothing."""
    audience = Audience(segment, definition.title) if segment else None
    template = MessageTemplate(rendered, settings, audience=audience)
    built = size = 0
    with db.session(write=False) as session:
        for batch in recipients(session, definition):
            for recipient in batch:
                size += len(template.build(recipient))
                built += 1
                if each is not None:
                    each(recipient)
        return DryRun(built, size, left_out(session, definition))
