"""The send log and the loop that drains it.

One `deliveries` row per (send, contact), snapshotted when the send starts. States:
queued -> sending -> sent; deferred (4xx: retried later), failed (5xx or retries used
up), skipped (unsubscribed or erased meanwhile), unknown (it was `sending` when the
process died: the server may have it; not resent unless asked). Rows are claimed
(`sending`) and their results recorded a batch per transaction; between two commits the
run's journal (journal.py) says which messages left and which the server took, so a
killed send resumes with nobody lost and nobody mailed twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

from sqlalchemy import ColumnElement, func, insert, literal, select, update
from sqlalchemy.orm import Session

from .audience.bulk import db_value, is_postgresql
from .audience.segments import Definition, matching
from .config import Settings
from .db import Contact, Database, Delivery, Send, changed, utcnow
from .errors import CitesmailError
from .intake import apply_pending, intake_path, pending_unsubscribes
from .journal import Journal, JournalError, JournalInUse, journal_path, read_journal
from .locks import Busy, ProcessLock
from .message import MessageTemplate, Recipient
from .render import RenderedCampaign
from .transports import Outcome, Transport

STATES = ("queued", "sending", "sent", "deferred", "failed", "skipped", "unknown")
PAUSE_AFTER = 10  # consecutive connection failures
LONG_WAIT = timedelta(minutes=5)
BATCH = 64  # rows claimed, and results recorded, per transaction
RECORD_EVERY = 0.25  # seconds: results are recorded at least this often
IN_FLIGHT_FOR = timedelta(minutes=10)  # a row `sending` longer than this is a dead run's
ANNOUNCE_EVERY = 60.0  # seconds: a wait is told again at most this often


class SendPaused(CitesmailError):
    """The SMTP server kept failing (or refused the login): the send stops, resumable."""


class SendBusy(CitesmailError):
    """Another process is running this send."""


@dataclass(frozen=True)
class StoredCampaign:
    """A campaign as its send snapshotted it."""

    slug: str
    subject: str
    html: str
    text: str
    slots: tuple[tuple[str, str], ...]
    calendar: str | None = None

    @classmethod
    def of(cls, send: Send) -> StoredCampaign:
        return cls(send.campaign, send.subject, send.html, send.text,
                   tuple((field_, default) for field_, default in send.slots), send.calendar)


def send_tests(settings: Settings, rendered: RenderedCampaign,
               recipients: list[Recipient]) -> list[tuple[str, Outcome]]:
    """Test messages (subject prefixed [TEST]) to the given people; nothing is logged."""
    from .transports import make_transport

    template = MessageTemplate(rendered, settings, subject_prefix="[TEST] ")
    transport = make_transport(settings)
    sender = parseaddr(settings.sender.from_)[1]
    try:
        return [(r.email, transport.send(sender, r.email, template.build(r)))
                for r in recipients]
    finally:
        transport.close()


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wire_address(email: str, ascii_domain: str) -> str:
    return f"{email.rpartition('@')[0]}@{ascii_domain}"


@dataclass
class Prepared:
    send_id: int
    total: int
    resumed: bool
    changed: bool  # the campaign file changed since the send started


def prepare_send(db: Database, rendered: RenderedCampaign, segment: str | None,
                 definition: Definition | None, source: str) -> Prepared:
    """Start the send (snapshot of campaign and recipients) or find the one started
    (`definition` may then be None: a send under way keeps its recipients)."""
    with db.session() as session:
        found = session.scalar(select(Send).where(Send.campaign == rendered.slug))
        if found is not None and found.state in {"scheduled", "missed"}:
            when = found.scheduled_at.isoformat(" ", "minutes") if found.scheduled_at else "?"
            raise CitesmailError(
                f"'{rendered.slug}' is {found.state} for {when} UTC",
                f"citesmail unschedule {rendered.slug} first, to send it now")
        if found is not None:
            return _resume(session, found, source)
        if definition is None:  # it was there a moment ago (unscheduled meanwhile?)
            raise CitesmailError(f"the send of '{rendered.slug}' is gone",
                                 "check citesmail status, then run the command again")
        send = Send(campaign=rendered.slug, segment=segment, subject=rendered.subject,
                    html=rendered.html, text=rendered.text,
                    slots=[list(slot) for slot in rendered.slots], source_hash=source,
                    calendar=rendered.calendar, state="running", started_at=utcnow())
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
    from .audience.segments import get_segment

    with db.session() as session:
        send = session.scalar(select(Send).where(Send.campaign == campaign))
        if send is None or send.state in {"done", "missed"}:
            return None
        if send.state == "running":
            return _resume(session, send, send.source_hash)
        definition = get_segment(session, send.segment or "")[1]
        total = _snapshot(session, send.id, definition)
        send.state, send.started_at = "running", utcnow()
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
                    func.coalesce(Contact.organization, ""), literal("queued"), literal(0))
             .where(matching(session, definition)).order_by(Contact.id))
    columns = ("send_id", "contact_id", "email", "first_name", "last_name", "organization",
               "state", "attempts")
    session.execute(insert(Delivery).from_select(columns, query))
    # Counted, not taken from rowcount: psycopg reports -1 for this INSERT ... SELECT.
    return session.scalar(select(func.count()).where(Delivery.send_id == send_id)) or 0


def counts(session: Session, send_id: int) -> dict[str, int]:
    query = (select(Delivery.state, func.count()).where(Delivery.send_id == send_id)
             .group_by(Delivery.state))
    found = dict.fromkeys(STATES, 0)
    found.update({state: n for state, n in session.execute(query)})
    return found


def summary(found: dict[str, int]) -> str:
    """'sent 4, failed 1': the states that have rows."""
    return ", ".join(f"{state} {n}" for state, n in found.items() if n) or "no recipients"


def requeue_unknown(db: Database, send_id: int) -> int:
    """Queue the `unknown` rows again; a finished send runs again for them."""
    with db.session() as session:
        found = changed(session,
            update(Delivery).where(Delivery.send_id == send_id, Delivery.state == "unknown")
            .values(state="queued", updated_at=utcnow()))
        if found:
            session.execute(update(Send).where(Send.id == send_id, Send.state == "done")
                            .values(state="running", finished_at=None))
        return found


@dataclass
class Claimed:
    delivery_id: int
    contact_id: int | None
    recipient: Recipient


@dataclass
class RunResult:
    counts: dict[str, int]
    finished: bool
    next_retry: datetime | None = None
    stopped: bool = False
    waiting_for_cap: datetime | None = None
    recovered: int = 0  # rows a dead run left `sending`: now `unknown`


class _Pace:
    """Rate limit (messages per second over all connections), shared by the threads."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self.next_at = time.monotonic()
        self.lock = threading.Lock()

    def wait(self, stop: threading.Event) -> None:
        if self.per_second <= 0:
            return
        with self.lock:
            at = max(self.next_at, time.monotonic())
            self.next_at = at + 1 / self.per_second
        delay = at - time.monotonic()
        if delay > 0:
            stop.wait(delay)  # Ctrl-C does not wait for the pace


_SENT = ("UPDATE deliveries SET state = 'sent', sent_at = ?, updated_at = ?, last_code = 250, "
         "last_error = NULL, attempts = attempts + 1 WHERE id ")


class _InPlace(contextlib.AbstractContextManager["_InPlace"]):
    """Runs each task at once, in the calling thread (a transport without parallelism)."""

    def submit(self, task: Callable[..., None], *args: Any) -> None:
        task(*args)

    def __exit__(self, *exc: object) -> None:
        return None


class SendRun:
    """Drains one send's due rows through `connections` parallel transports."""

    def __init__(self, db: Database, send_id: int, settings: Settings,
                 make_transport: Callable[[], Transport], *,
                 stop: threading.Event | None = None,
                 progress: Callable[[dict[str, int]], None] | None = None,
                 notice: Callable[[str], None] | None = None) -> None:
        self.db, self.send_id, self.settings = db, send_id, settings
        self.notice = notice  # told when the run waits (for a retry, for the cap)
        self.announced = ("", 0.0)  # what it last said it waited for, and when
        self.make_transport = make_transport
        # Asked from outside (Ctrl-C, the worker stopping) or decided here (a pause): the
        # outside event is only read, so one send's pause does not stop the worker.
        self.outer_stop = stop or threading.Event()
        self.stop = threading.Event()
        self.progress = progress
        self.sender = parseaddr(settings.sender.from_)[1]
        self.delays = settings.delivery.retry_delays
        self.connections = settings.delivery.connections
        self.pace = _Pace(settings.delivery.rate_per_second)
        with db.session(write=False) as session:
            send = session.get(Send, send_id)
            assert send is not None
            self.template = MessageTemplate(StoredCampaign.of(send), settings)
        url = db.engine.url
        self._database_file = url.database if url.get_backend_name() == "sqlite" else None
        self._database = url.render_as_string(hide_password=True)
        self.run_id = ""
        self.journal: Journal | None = None
        self.intake = intake_path(db, settings.workspace)  # what `serve` took in
        # Claimed ahead: enough to keep the connections busy, no more than a second's worth
        # at a slow rate (an unsubscribe is checked when its row is claimed).
        rate = settings.delivery.rate_per_second
        self.batch = BATCH if rate <= 0 else max(self.connections, min(BATCH, int(rate)))
        self.finished: list[tuple[Claimed, Outcome | None]] = []  # results to record
        self.drained = False  # after an error, everything in hand was recorded
        self.wake = threading.Event()  # the connections wake the loop
        self.wake_at = 1  # results waiting that are worth waking it for
        self.failures_in_a_row = 0
        self.last_connection_error = ""
        self.paused = False
        self.fatal_error = ""

    # -- database steps: each one transaction ---------------------------------------

    # The hot path speaks SQL to the driver: building SQLAlchemy statements for every
    # message cost more than sending it.
    _DUE = ("SELECT d.id, d.contact_id, d.email, d.first_name, d.last_name, d.organization, "
            "c.status FROM deliveries d LEFT JOIN contacts c ON c.id = d.contact_id "
            "WHERE d.send_id = ? AND {condition} ORDER BY {order} LIMIT ?")

    def _sql(self, session: Session, sql: str, params: Any, many: bool = False) -> Any:
        connection = session.connection()
        if is_postgresql(session):
            sql = sql.replace("?", "%s")
        if many:
            return connection.exec_driver_sql(sql, params)
        return connection.exec_driver_sql(sql, tuple(params))

    def _stamp(self, session: Session, moment: datetime) -> Any:
        return db_value(session, Delivery.__table__, "updated_at", moment)  # type: ignore[arg-type]

    def _due(self, session: Session, limit: int, now: Any) -> list[Any]:
        """Queued rows in order, then deferred rows whose retry time has come."""
        lock = " FOR UPDATE OF d SKIP LOCKED" if is_postgresql(session) else ""
        found = list(self._sql(session, self._DUE.format(
            condition="d.state = 'queued'", order="d.id") + lock,
            (self.send_id, limit)))
        if len(found) < limit:
            found += self._sql(session, self._DUE.format(
                condition="d.state = 'deferred' AND d.next_attempt_at <= ?",
                order="d.next_attempt_at") + lock,
                (self.send_id, now, limit - len(found)))
        return found

    def _set_state(self, session: Session, ids: list[int], state: str, now: Any) -> None:
        marks = ", ".join("?" * len(ids))
        self._sql(session, f"UPDATE deliveries SET state = ?, updated_at = ? "
                           f"WHERE id IN ({marks})", (state, now, *ids))

    def _claim(self, session: Session, limit: int) -> list[Claimed]:
        now = self._stamp(session, utcnow())
        claimed, skipped = [], []
        # Read inside the claim's transaction, before its rows: an unsubscribe answered
        # before now is either applied (and seen below) or still in the intake.
        asked_out = pending_unsubscribes(self.intake)
        for row_id, contact_id, email, first, last, org, status in self._due(session, limit,
                                                                             now):
            if contact_id is None or status != "active" or contact_id in asked_out:
                skipped.append(row_id)
                continue
            claimed.append(Claimed(row_id, contact_id,
                                   Recipient(email, first, last, org, contact_id)))
        if skipped:
            self._set_state(session, skipped, "skipped", now)
        if claimed:
            self._set_state(session, [c.delivery_id for c in claimed], "sending", now)
        return claimed

    def _record_all(self, session: Session,
                    results: list[tuple[Claimed, Outcome | None]]) -> None:
        """Record outcomes: the common one (sent) in one statement for all; rows whose
        message never left (the run stopping, or a fatal problem such as a refused login,
        which says nothing about the recipient) go back to the queue, no attempt counted."""
        if not results:
            return
        now = self._stamp(session, utcnow())
        sent = [(now, now, c.delivery_id) for c, o in results if o is not None
                and o.kind == "sent"]
        if sent:
            self._sql(session, _SENT + "= ?", sent, many=True)
        unsent = [c.delivery_id for c, o in results if o is None or o.fatal]
        if unsent:
            self._set_state(session, unsent, "queued", now)
        for claimed, outcome in results:
            if outcome is not None and outcome.kind != "sent" and not outcome.fatal:
                self._record(session, claimed, outcome)

    def _record(self, session: Session, claimed: Claimed, outcome: Outcome) -> None:
        """A message that did not go (or may have): `_record_all` records the sent ones."""
        now = utcnow()
        row = session.get(Delivery, claimed.delivery_id)
        assert row is not None
        row.attempts += 1
        row.last_code, row.updated_at = outcome.code, now
        row.last_error = outcome.message[:1000]
        if outcome.kind == "unknown":
            row.state = "unknown"
        elif outcome.kind == "permanent":
            row.state = "failed"
            if outcome.bounce and claimed.contact_id is not None:
                session.execute(update(Contact).where(Contact.id == claimed.contact_id,
                                                      Contact.status == "active")
                                .values(status="bounced", updated_at=now))
        elif row.attempts > len(self.delays):
            row.state = "failed"
        else:
            row.state = "deferred"
            row.next_attempt_at = now + timedelta(seconds=self.delays[row.attempts - 1])

    def _next_retry(self, session: Session) -> datetime | None:
        return session.scalar(select(func.min(Delivery.next_attempt_at))
                              .where(Delivery.send_id == self.send_id,
                                     Delivery.state == "deferred"))

    def _hourly_room(self, session: Session) -> tuple[int, datetime | None]:
        """How many messages the hourly cap still allows, and when more will be. The
        cap is the relay's, so every send counts: those sent in the last hour, and those
        in flight in any running send (this one's, another process's, the worker's
        other sends)."""
        cap = self.settings.delivery.hourly_cap
        if cap <= 0:
            return 1 << 30, None
        since = utcnow() - timedelta(hours=1)
        recent = select(Delivery.sent_at).where(Delivery.sent_at > since)
        # Rows a dead run left `sending` stop counting after a while (its next run
        # settles them): a live run's have been claimed seconds ago.
        running = select(Send.id).where(Send.state == "running")
        in_flight = select(Delivery.id).where(
            Delivery.send_id.in_(running), Delivery.state == "sending",
            Delivery.updated_at > utcnow() - IN_FLIGHT_FOR)
        used = sum(session.scalar(select(func.count()).select_from(rows.subquery())) or 0
                   for rows in (recent, in_flight))
        if used < cap:
            return cap - used, None
        oldest = session.scalar(select(func.min(Delivery.sent_at))
                                .where(Delivery.sent_at > since))
        if oldest is None:  # only messages in flight fill it: look again in a moment
            return 0, utcnow() + timedelta(seconds=5)
        return 0, oldest + timedelta(hours=1)

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> RunResult:
        """Drain the send. Only one process at a time runs a given send (a lock that
        dies with its holder), so rows left `sending` can only be a dead run's."""
        lock = ProcessLock(self.db, f"send-{self.send_id}")
        try:
            lock.acquire()
        except Busy as busy:
            raise SendBusy(f"this campaign is being sent by another process ({busy.holder})",
                           "let it finish, or stop it first") from None
        try:  # what `serve` took in (another process at it: `_claim` reads it pending)
            apply_pending(self.db, self.intake, wait=False)
            recovered = self._recover()
            self.journal = Journal(self.journal_path(self.run_id), self.run_id)
            settled = False
            try:
                result = self._run_with_transports()
                settled = True
            except SendPaused:  # everything was recorded before it paused
                settled = True
                raise
            except BaseException:
                settled = self.drained  # all it knew is recorded: nothing to keep
                raise
            finally:  # the journal goes once the database holds all it says
                self.journal.close(remove=settled)
            result.recovered = recovered
            return result
        finally:
            lock.release()

    def journal_path(self, run_id: str) -> Path:
        return journal_path(self._database_file, self.settings.workspace, self._database,
                            self.send_id, run_id)

    def _recover(self) -> int:
        """Settle the rows a dead run left `sending`, by its journal when there is one
        for that run (sent, unknown, or never sent: queued again), else all `unknown`.
        Then this run takes the send: its id goes into the send row (the fence every
        later transaction of this run checks)."""
        with self.db.session() as session:
            send = session.get(Send, self.send_id)
            assert send is not None
            previous = self.journal_path(send.run_id) if send.run_id else None
            try:
                journal = read_journal(previous, send.run_id) if previous else None
            except JournalInUse:
                raise SendBusy("this campaign is being sent by another process on this "
                               "machine (its journal is in use)",
                               "let it finish, or stop it first") from None
            left = list(session.scalars(select(Delivery.id).where(
                Delivery.send_id == self.send_id, Delivery.state == "sending")))
            unknown = [i for i in left if journal is None or i in journal.transmitting]
            if journal is not None:
                self._settle(session, [i for i in left if i in journal.accepted], "sent")
                self._settle(session, [i for i in left if i not in journal.accepted
                                       and i not in journal.transmitting], "queued")
            self._settle(session, unknown, "unknown")
            send.run_id = self.run_id = uuid.uuid4().hex
        if previous is not None:  # the database holds what it said now
            previous.unlink(missing_ok=True)
        return len(unknown)

    def _fence(self, session: Session) -> None:
        """Stop if another run has taken the send (this one lost its lock)."""
        holder = self._sql(session, "SELECT run_id FROM sends WHERE id = ?",
                           (self.send_id,)).scalar()
        if holder != self.run_id:
            raise SendBusy("another run has taken over this send", "let it finish")

    def _settle(self, session: Session, ids: list[int], state: str) -> None:
        now = self._stamp(session, utcnow())
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            if state == "sent":
                self._sql(session, f"{_SENT}IN ({marks})", (now, now, *chunk))
            elif state == "unknown":
                self._sql(session, f"UPDATE deliveries SET state = 'unknown', updated_at = ?, "
                                   f"last_error = ? WHERE id IN ({marks})",
                          (now, "the run stopped while this message was being sent (the "
                                "server may have it)", *chunk))
            else:
                self._set_state(session, chunk, state, now)

    def _run_with_transports(self) -> RunResult:
        free: SimpleQueue[Transport] = SimpleQueue()
        first = self.make_transport()
        free.put(first)
        parallel = first.parallel
        for _ in range(self.connections - 1 if parallel else 0):
            free.put(self.make_transport())
        results: SimpleQueue[tuple[Claimed, Outcome | None]] = SimpleQueue()
        journal = self.journal
        assert journal is not None

        def deliver(claimed: Claimed) -> None:
            """In a connection's thread (the message is built there too, while the other
            connections wait for their server). None: not sent (stopping), back to the
            queue."""
            outcome: Outcome | None = None
            try:
                if not self.stop.is_set():
                    self.pace.wait(self.stop)
                if not self.stop.is_set():
                    data = self._build(claimed)
                    outcome = data if isinstance(data, Outcome) else \
                        self._deliver(free, journal, claimed, data)
            except Exception as exc:  # before anything was sent: stop the send, say why
                outcome = Outcome("connection", None, "cannot build the message for "
                                  f"{claimed.recipient.email}: {type(exc).__name__}: {exc}",
                                  fatal=True)
            finally:
                results.put((claimed, outcome))
                # Wake the loop only when it has work: fewer wake-ups, less GIL traffic.
                if results.qsize() >= self.wake_at or (outcome is not None
                                                       and outcome.kind != "sent"):
                    self.wake.set()

        outstanding = [0]
        try:
            with (ThreadPoolExecutor(self.connections, "citesmail-send") if parallel
                  else _InPlace()) as pool:
                try:
                    return self._loop(pool, deliver, results, outstanding)
                except BaseException:
                    self.stop.set()
                    self.drained = self._drain(results, outstanding[0])
                    raise
        finally:
            while not free.empty():
                free.get().close()

    def _deliver(self, free: SimpleQueue[Transport], journal: Journal, claimed: Claimed,
                 data: bytes) -> Outcome:
        transport = free.get()
        delivery_id = claimed.delivery_id
        try:
            outcome = transport.send(self.sender, claimed.recipient.email, data,
                                     lambda: journal.transmitting(delivery_id))
        except JournalError as exc:  # its line could not be written: it did not go
            outcome = Outcome("connection", None, exc.problems[0].message, fatal=True)
        except CitesmailError as exc:  # e.g. the login refused: nothing was sent
            outcome = Outcome("connection", None, str(exc), fatal=True)
        except Exception as exc:  # unforeseen: the message may have gone
            outcome = Outcome("unknown", None, f"{type(exc).__name__}: {exc}")
        finally:
            free.put(transport)
        # The answer, for the next run should this one die before recording it. The
        # journal reserved room for it; if it still cannot be written, stop sending.
        try:
            if outcome.kind == "sent":
                journal.accepted(delivery_id)
            elif outcome.kind != "unknown":
                journal.refused(delivery_id)
        except JournalError as exc:
            self._halt(exc.problems[0].message)
        return outcome

    def _halt(self, why: str) -> None:
        """Stop sending for a reason no retry fixes; the first reason is the one told."""
        self.fatal_error = self.fatal_error or why
        self.stop.set()

    def _drain(self, results: SimpleQueue[tuple[Claimed, Outcome | None]],
               outstanding: int) -> bool:
        """After an error: wait for the messages in hand and record what became of them
        (best effort: the journal tells the next run what this one could not record)."""
        self.finished.extend(results.get() for _ in range(outstanding))
        try:
            with self.db.session() as session:
                self._record_all(session, self.finished)
                # Rows claimed but never handed to a connection (the error came between
                # the claim's commit and the hand-over): the journal, which has no line
                # about them, tells the next run they never left.
                left = session.scalar(select(func.count()).where(
                    Delivery.send_id == self.send_id, Delivery.state == "sending"))
        except Exception:
            return False  # the journal keeps what they were, for the next run
        self.finished.clear()
        return not left

    def _build(self, claimed: Claimed) -> bytes | Outcome:
        try:
            return self.template.build(claimed.recipient)
        except UnicodeEncodeError:
            return Outcome("permanent", None, "the address needs SMTPUTF8 (non-ASCII before "
                           "the @), which citesmail does not use")

    def _loop(self, pool: ThreadPoolExecutor | _InPlace, deliver: Callable[[Claimed], None],
              results: SimpleQueue[tuple[Claimed, Outcome | None]],
              outstanding: list[int]) -> RunResult:
        """Claim a batch, hand its messages to the connections, record the results in
        batches; claim the next batch while the connections still have work."""
        finished = self.finished
        last_progress = last_record = claim_again = 0.0
        while True:
            if self.outer_stop.is_set():
                self.stop.set()
            batch = self.batch
            want = 0 if self.stop.is_set() or outstanding[0] > batch or \
                time.monotonic() < claim_again else 2 * batch - outstanding[0]
            quiet = outstanding[0] == 0
            if want or quiet or len(finished) >= batch or \
                    time.monotonic() - last_record > RECORD_EVERY:
                with self.db.session() as session:
                    self._fence(session)
                    self._record_all(session, finished)
                    room, cap_until = self._hourly_room(session) if want else (1, None)
                    claimed_now = self._claim(session, min(want, room)) if want and room \
                        else []
                    state = counts(session, self.send_id) if quiet and not claimed_now \
                        else None
                    next_retry = self._next_retry(session) if state else None
                finished.clear()  # only once committed: else the drain records them
                last_record = time.monotonic()
                if want and len(claimed_now) < want:  # the queue is dry for now
                    claim_again = last_record + RECORD_EVERY
                for claimed in claimed_now:
                    pool.submit(deliver, claimed)
                    outstanding[0] += 1
                if state is not None and not finished:  # nothing to do right now
                    result = self._idle(state, next_retry, cap_until if room == 0 else None)
                    if result is not None:
                        return result
                    continue
            if not outstanding[0]:
                continue
            # Sleep until enough results are in to claim the next batch (or all of them,
            # at the end), or a failure, or RECORD_EVERY has passed.
            self.wake_at = outstanding[0] - batch if outstanding[0] > batch else outstanding[0]
            if results.qsize() < self.wake_at:
                self.wake.wait(RECORD_EVERY)
            self.wake.clear()
            while True:
                try:
                    item = results.get_nowait()
                except Empty:
                    break
                finished.append(item)
                outstanding[0] -= 1
                if item[1] is not None:
                    self._watch_connection(item[1])
            if self.progress and time.monotonic() - last_progress > 0.5:
                last_progress = time.monotonic()
                with self.db.session(write=False) as session:
                    self.progress(counts(session, self.send_id))

    def _watch_connection(self, outcome: Outcome) -> None:
        if outcome.fatal:
            self._halt(outcome.message)
        if outcome.kind != "connection":
            self.failures_in_a_row = 0
            return
        self.failures_in_a_row += 1
        self.last_connection_error = outcome.message
        if self.failures_in_a_row >= PAUSE_AFTER:
            self.paused = True
            self.stop.set()

    def _announce(self, wake: datetime, state: dict[str, int], capped: bool) -> None:
        """Say what the run waits for, when it waits a few seconds or more: once, and
        again a minute later if it still does."""
        seconds = (wake - utcnow()).total_seconds()
        why = "the hourly cap ([delivery] hourly_cap)" if capped else \
            f"the next retry of {state['deferred']} deferred message(s)"
        said, when = self.announced
        if self.notice is None or seconds < 2 or (
                why == said and time.monotonic() - when < ANNOUNCE_EVERY):
            return
        self.announced = (why, time.monotonic())
        last = f"; last connection error: {self.last_connection_error}" \
            if self.failures_in_a_row and not capped else ""
        self.notice(f"waiting {seconds:.0f} s for {why}{last}")

    def _idle(self, state: dict[str, int], next_retry: datetime | None,
              cap_until: datetime | None) -> RunResult | None:
        """Nothing to send right now: finish, wait a little, or stop and say when."""
        if self.stop.is_set():
            if self.fatal_error:
                raise SendPaused(f"stopped: {self.fatal_error}",
                                 "fix it, then run the same command to resume")
            if self.paused:
                raise SendPaused(
                    f"paused after {PAUSE_AFTER} connection failures in a row "
                    f"(last: {self.last_connection_error})",
                    "check [smtp] and the server, then run the same command to resume")
            return RunResult(state, False, next_retry, stopped=True)
        if state["queued"] == 0 and state["deferred"] == 0 and state["sending"] == 0:
            with self.db.session() as session:
                session.execute(update(Send).where(Send.id == self.send_id,
                                                   Send.state != "done")
                                .values(state="done", finished_at=utcnow()))
            return RunResult(state, True)
        # Capped, nothing can go before the cap frees a slot, whatever is due meanwhile.
        wake = cap_until or next_retry or utcnow()
        if wake - utcnow() > LONG_WAIT:
            return RunResult(state, False, next_retry, waiting_for_cap=cap_until)
        self._announce(wake, state, capped=cap_until is not None)
        self.stop.wait(min(max((wake - utcnow()).total_seconds(), 0.05), 1.0))
        return None
