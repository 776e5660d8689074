"""The queue of confirmation emails (`outgoing_mail`), sent outside any HTTP request by
`serve`'s sender thread and by `worker`.

A row is claimed for a while (LEASE) in a short transaction, the message is built and
handed to the transport, and only once the transport accepted it is the row marked sent:
nothing is lost when the relay is down (the row waits, with growing delays) or when the
process dies (the lease runs out and the row is claimed again).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..background import Loop
from ..config import Settings
from ..db import Contact, Database, MailingList, OutgoingMail, utcnow
from ..errors import CitesmailError
from ..message import personal_message
from ..render.confirmation import render_confirmation
from ..states import ContactStatus, OutgoingState
from ..tokens import DEVELOPMENT_SECRET, make_confirm_token
from ..verp import ReturnPath
from .transports import Outcome, Transport

LEASE = timedelta(minutes=5)  # a claimed row is claimed again after this (its sender died)
BATCH = 20  # rows claimed at once
FIRST_RETRY = timedelta(seconds=2)  # then doubled at each try, up to MAX_RETRY
MAX_RETRY = timedelta(minutes=10)
KEEP_SENT = timedelta(days=1)  # sent rows kept this long (one confirmation per 10 minutes)
LOOK_EVERY = 5.0  # seconds: rows queued by another process are sent this soon
# Never mailed again, even to confirm.
_GONE = (ContactStatus.BOUNCED, ContactStatus.COMPLAINED)


@dataclass(frozen=True)
class Due:
    id: int
    contact_id: int
    email: str
    status: str
    lists: list[int]
    titles: list[str]
    lang: str
    attempts: int
    created_at: datetime


@dataclass
class Drained:
    sent: int = 0
    deferred: int = 0
    failed: int = 0


def confirm_url(settings: Settings, due: Due) -> str:
    until = due.created_at + timedelta(days=settings.subscribe.confirm_days)
    token = make_confirm_token(settings.secret or DEVELOPMENT_SECRET, due.contact_id,
                               due.lists, int(until.timestamp()))
    return f"{settings.unsubscribe.base_url.rstrip('/')}/confirm/{token}"


def confirmation_bytes(settings: Settings, due: Due, now: datetime | None = None) -> bytes:
    until = due.created_at + timedelta(days=settings.subscribe.confirm_days)
    rendered = render_confirmation(settings, due.lang, due.email, due.titles,
                                   confirm_url(settings, due), until)
    return personal_message(settings, due.email, rendered.subject, rendered.html,
                            rendered.text, f"confirm.{due.contact_id}", now=now)


def _titles(session: Session, list_ids: list[int]) -> list[str]:
    if not list_ids:
        return []
    return [title or name for name, title in session.execute(
        select(MailingList.name, MailingList.title).where(MailingList.id.in_(list_ids))
        .order_by(MailingList.name))]


def claim(db: Database, now: datetime, limit: int = BATCH) -> list[Due]:
    """Rows due, each leased for LEASE and its try counted."""
    with db.session() as session:
        query = (select(OutgoingMail, Contact.email, Contact.status)
                 .join(Contact, Contact.id == OutgoingMail.contact_id)
                 .where(OutgoingMail.state == OutgoingState.QUEUED,
                        OutgoingMail.next_attempt_at <= now)
                 .order_by(OutgoingMail.id).limit(limit))
        if db.is_postgresql:  # SQLite's BEGIN IMMEDIATE already keeps others out
            query = query.with_for_update(of=OutgoingMail, skip_locked=True)
        found = []
        for row, email, status in session.execute(query).all():
            row.next_attempt_at, row.attempts = now + LEASE, row.attempts + 1
            found.append(Due(row.id, row.contact_id, email, status, list(row.lists),
                             _titles(session, list(row.lists)), row.lang, row.attempts,
                             row.created_at))
    return found


def retry_delay(attempts: int) -> timedelta:
    delay: timedelta = FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 20)
    return min(delay, MAX_RETRY)


def settle(db: Database, due: Due, outcome: Outcome, now: datetime) -> None:
    with db.session() as session:
        row = session.get(OutgoingMail, due.id)
        if row is None:  # the contact was erased meanwhile
            return
        if outcome.kind == "sent":
            row.state, row.sent_at, row.last_error = OutgoingState.SENT, now, None
        elif outcome.kind == "permanent":
            row.state, row.last_error = OutgoingState.FAILED, outcome.message[:1000]
        else:
            row.next_attempt_at = now + retry_delay(due.attempts)
            row.last_error = (outcome.message or outcome.kind)[:1000]


def prune(db: Database, now: datetime) -> None:
    with db.session() as session:
        session.execute(delete(OutgoingMail).where(
            OutgoingMail.state == OutgoingState.SENT, OutgoingMail.sent_at < now - KEEP_SENT))


def next_due(db: Database) -> datetime | None:
    with db.session(write=False) as session:
        return session.scalar(select(func.min(OutgoingMail.next_attempt_at))
                              .where(OutgoingMail.state == OutgoingState.QUEUED))


Log = Callable[[str], None]


def _send_one(settings: Settings, transport: Transport, due: Due, now: datetime) -> Outcome:
    if due.status in _GONE:
        return Outcome("permanent", None, f"the contact is {due.status}")
    try:
        data = confirmation_bytes(settings, due, now)
    except CitesmailError as exc:  # a workspace template broken: kept until it is fixed
        return Outcome("temporary", None, f"cannot build the message: {exc}")
    sender = ReturnPath(settings).sender(due.contact_id, 0)
    return transport.send(sender, due.email, data)


def drain(db: Database, settings: Settings, transports: Callable[[], Transport],
          log: Log, now: Callable[[], datetime] = utcnow) -> Drained:
    """Send every confirmation due; those the relay does not take wait for a later try."""
    done = Drained()
    while batch := claim(db, now()):
        transport = transports()
        try:
            down: Outcome | None = None  # the relay is unreachable: the rest wait too
            for due in batch:
                outcome = down or _send_one(settings, transport, due, now())
                if outcome.kind == "connection" or outcome.fatal:
                    down = outcome
                settle(db, due, outcome, now())
                _tell(log, due, outcome, done)
        finally:
            transport.close()
        if down is not None:
            break
    prune(db, now())
    return done


def _tell(log: Log, due: Due, outcome: Outcome, done: Drained) -> None:
    if outcome.kind == "sent":
        done.sent += 1
        log(f"confirmation {due.id}: sent")
    elif outcome.kind == "permanent":
        done.failed += 1
        log(f"confirmation {due.id}: refused for good: {outcome.message}")
    else:
        done.deferred += 1
        delay = int(retry_delay(due.attempts).total_seconds())
        log(f"confirmation {due.id}: deferred (try {due.attempts}): "
            f"{outcome.message or outcome.kind}; tried again in {delay}s")


class OutgoingSender(Loop):
    """A thread that drains the queue: woken when a request queued a row, and every
    LOOK_EVERY seconds (rows queued by a command, retries that came due)."""

    thread_name = "citesmail-outgoing"

    def __init__(self, db: Database, settings: Settings, transports: Callable[[], Transport],
                 log: Log) -> None:
        super().__init__()
        self.db, self.settings, self.transports, self.log = db, settings, transports, log

    def _run(self) -> None:
        while not self.stop.is_set():
            wait = LOOK_EVERY
            try:
                drain(self.db, self.settings, self.transports, self.log)
                due = next_due(self.db)
                if due is not None:
                    wait = min(max((due - utcnow()).total_seconds(), 0.05), LOOK_EVERY)
            except CitesmailError as exc:  # the database busy, the transport refused
                self.log(f"confirmations: {exc.problems[0].message}; tried again soon")
            except Exception as exc:  # the thread must live: said, then tried again
                self.log(f"confirmations: {type(exc).__name__}: {exc}; tried again soon")
            self.wake.wait(wait)
            self.wake.clear()
