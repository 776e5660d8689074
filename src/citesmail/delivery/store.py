"""The send log's SQL for a run of one send: claim the due rows, record the answers,
settle what a dead run left, count against the hourly cap, and check the fence (the
run that owns the send). `Store` is what a run needs; `SqlStore` does it on SQLite and
PostgreSQL, each method one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..audience.bulk import db_value
from ..audience.lists import lists_of, segment_lists
from ..audience.segments import Definition
from ..audience.status import leave
from ..db import Database, Delivery, Segment, Send, is_postgresql, utcnow
from ..errors import CitesmailError
from ..intake import pending_unsubscribes
from ..message import Recipient
from ..states import ContactStatus, DeliveryState, SendState
from . import runs
from .journal import JournalInUse, read_journal
from .sendlog import StoredCampaign, counts
from .transports import Outcome

IN_FLIGHT_FOR = timedelta(minutes=10)  # a row `sending` longer than this is a dead run's
MAX_ERROR = 1000  # characters of a server's answer kept (the column's size)
_CHUNK = 500  # ids per statement


class SendBusy(CitesmailError):
    """Another process is running this send."""


@dataclass
class Claimed:
    delivery_id: int
    contact_id: int | None
    recipient: Recipient


Result = tuple[Claimed, Outcome | None]  # None: the message never left


@dataclass
class Step:
    """What one step of a run found, in one transaction."""

    claimed: list[Claimed]
    room: int  # messages the hourly cap still allows (when some were wanted)
    cap_until: datetime | None  # when the cap allows more, if it is reached
    counts: dict[str, int] | None  # the send's rows per state, when the run was idle
    next_retry: datetime | None
    runs: int = 1  # runs of sends going on now (the rate is shared among them)
    settled: list[Path] = field(default_factory=list)  # dead runs' journals, now useless


@dataclass
class Settled:
    unknown: int  # rows that may have gone
    journals: list[Path]  # the dead runs' journals, to remove once this is committed


@dataclass
class Recovery:
    run_id: str  # the new run's: the fence
    unknown: int  # rows a dead run left `sending` that may have gone
    previous: list[Path]  # the dead runs' journals, to remove once this is committed


class Store(Protocol):
    """The send log as a run of one send sees it."""

    def campaign(self) -> StoredCampaign: ...

    def take_over(self, journal_of: Callable[[str], Path], run_id: str | None = None,
                  holder: int | None = None) -> Recovery: ...

    def step(self, run_id: str, results: list[Result], want: int, idle: bool) -> Step: ...

    def record(self, results: list[Result]) -> int: ...

    def counts(self) -> dict[str, int]: ...

    def finish(self) -> None: ...


# The hot path speaks SQL to the driver: building SQLAlchemy statements for every
# message cost more than sending it.
_DUE = ("SELECT d.id, d.contact_id, d.email, d.first_name, d.last_name, d.organization, "
        "c.status, c.measurement_consent "
        "FROM deliveries d LEFT JOIN contacts c ON c.id = d.contact_id "
        "WHERE d.send_id = ? AND {condition} ORDER BY {order} LIMIT ?")
_SENT = ("UPDATE deliveries SET state = 'sent', sent_at = ?, updated_at = ?, last_code = 250, "
         "last_error = NULL, attempts = attempts + 1 WHERE id ")
_STOPPED = "the run stopped while this message was being sent (the server may have it)"


def _sql(session: Session, sql: str, params: Any) -> Any:
    """A statement in the driver's own words ('?' marks become '%s' for psycopg)."""
    connection = session.connection()
    if is_postgresql(session):
        sql = sql.replace("?", "%s")
    return connection.exec_driver_sql(sql, tuple(params))


def _stamp(session: Session, moment: datetime) -> Any:
    return db_value(session, Delivery.__table__, "updated_at", moment)  # type: ignore[arg-type]


class SqlStore:
    """The send log of one send, on SQLite or PostgreSQL."""

    def __init__(self, db: Database, send_id: int, *, retry_delays: list[int],
                 hourly_cap: int, intake: Path, paced: bool = True) -> None:
        """`paced`: the run keeps a rate, shared among the runs alive (counted at each
        claim); an unpaced run does not count them."""
        self.db, self.send_id = db, send_id
        self.delays, self.cap, self.paced = retry_delays, hourly_cap, paced
        self.intake = intake  # what `serve` took in and has not applied yet
        self.lists: dict[int, str] | None = None  # the segment's public lists, read once
        self.run_id = ""
        self.holder: int | None = None  # PostgreSQL: the session holding the run's lock
        self.journal_of: Callable[[str], Path] | None = None

    def campaign(self) -> StoredCampaign:
        with self.db.session(write=False) as session:
            send = session.get(Send, self.send_id)
            assert send is not None
            return StoredCampaign.of(send)

    def counts(self) -> dict[str, int]:
        with self.db.session(write=False) as session:
            return counts(session, self.send_id)

    def finish(self) -> None:
        with self.db.session() as session:
            session.execute(update(Send).where(Send.id == self.send_id,
                                               Send.state != SendState.DONE)
                            .values(state=SendState.DONE, finished_at=utcnow()))

    def step(self, run_id: str, results: list[Result], want: int, idle: bool) -> Step:
        """Record `results`, then claim up to `want` due rows (within the hourly cap);
        when `idle` and none is claimed, count the send's rows."""
        with self.db.session() as session:
            postgresql = is_postgresql(session)
            self._fence(session, run_id)
            self._record_all(session, results)
            if want and self.cap > 0 and postgresql:
                runs.serialize_cap(session)
            room, cap_until = self._hourly_room(session) if want else (1, None)
            claimed = self._claim(session, min(want, room), run_id) if want and room else []
            state = counts(session, self.send_id) if idle and not claimed else None
            settled = Settled(0, [])
            if state and state["sending"] and postgresql and self.journal_of is not None:
                # Rows of another run: settled here if that run died (and claimed next).
                settled = self._settle_dead(session, None)
                state = counts(session, self.send_id) if settled.journals else state
            next_retry = self._next_retry(session) if state else None
            live = runs.live(session) if want and postgresql and self.paced else 1
        return Step(claimed, room, cap_until, state, next_retry, live, settled.journals)

    def record(self, results: list[Result]) -> int:
        """Record `results`; returns how many rows are still `sending`."""
        with self.db.session() as session:
            self._record_all(session, results)
            # Rows claimed but never handed to a connection (the error came between
            # the claim's commit and the hand-over) stay `sending`: the caller keeps its
            # journal, which has no line about them, to tell the next run they never left.
            return session.scalar(select(func.count()).where(
                Delivery.send_id == self.send_id, Delivery.run_id == self.run_id,
                Delivery.state == DeliveryState.SENDING)) or 0

    # -- claiming --------------------------------------------------------------------

    def _due(self, session: Session, limit: int, now: Any) -> list[Any]:
        """Queued rows in order, then deferred rows whose retry time has come."""
        lock = " FOR UPDATE OF d SKIP LOCKED" if is_postgresql(session) else ""
        found: list[Any] = _sql(session, _DUE.format(
            condition="d.state = 'queued'", order="d.id") + lock,
            (self.send_id, limit)).fetchall()  # in one call: not row by row
        if len(found) < limit:
            found += _sql(session, _DUE.format(
                condition="d.state = 'deferred' AND d.next_attempt_at <= ?",
                order="d.next_attempt_at") + lock,
                (self.send_id, now, limit - len(found))).fetchall()
        return found

    def _set_state(self, session: Session, ids: list[int], state: DeliveryState,
                   now: Any, run_id: str | None = None) -> None:
        marks = ", ".join("?" * len(ids))
        _sql(session, f"UPDATE deliveries SET state = ?, updated_at = ?, run_id = ? "
                      f"WHERE id IN ({marks})", (str(state), now, run_id, *ids))

    def _claim(self, session: Session, limit: int, run_id: str) -> list[Claimed]:
        now = _stamp(session, utcnow())
        taken, skipped = [], []
        # Read inside the claim's transaction, before its rows: an unsubscribe answered
        # before now is either applied (and seen below) or still in the intake.
        asked_out = pending_unsubscribes(self.intake)
        for row in self._due(session, limit, now):
            contact_id, status = row[1], row[6]
            if contact_id is None or status != ContactStatus.ACTIVE \
                    or contact_id in asked_out:
                skipped.append(row[0])
                continue
            taken.append(row)
        # The footer says why each gets the message: their lists, one query per batch.
        on = self._lists_of(session, [row[1] for row in taken]) if taken else {}
        claimed = [Claimed(row_id, contact_id, Recipient(email, first, last, org, contact_id,
                                                         on.get(contact_id, ""),
                                                         bool(consent)))
                   for row_id, contact_id, email, first, last, org, _, consent in taken]
        if skipped:
            self._set_state(session, skipped, DeliveryState.SKIPPED, now)
        if claimed:
            self._set_state(session, [c.delivery_id for c in claimed],
                            DeliveryState.SENDING, now, run_id)
        return claimed

    def _lists_of(self, session: Session, contact_ids: list[int]) -> dict[int, str]:
        """The public lists of the send's segment each contact is on (read once a run)."""
        if self.lists is None:
            segment = session.scalar(select(Send.segment).where(Send.id == self.send_id))
            definition = session.scalar(select(Segment.definition)
                                        .where(Segment.name == segment)) if segment else None
            names = Definition.from_json(definition).lists if definition is not None else []
            self.lists = segment_lists(session, names)
        return lists_of(session, contact_ids, self.lists)

    # -- recording -------------------------------------------------------------------

    def _record_all(self, session: Session, results: list[Result]) -> None:
        """Record outcomes: the common one (sent) in one statement for all; rows whose
        message never left (the run stopping, or a fatal problem such as a refused login,
        which says nothing about the recipient) go back to the queue, no attempt counted."""
        if not results:
            return
        # One statement for all the sent rows (a statement per row cost twice as much).
        self._settle(session, [c.delivery_id for c, o in results
                               if o is not None and o.kind == "sent"], DeliveryState.SENT)
        unsent = [c.delivery_id for c, o in results if o is None or o.fatal]
        if unsent:
            self._set_state(session, unsent, DeliveryState.QUEUED,
                            _stamp(session, utcnow()))
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
        row.last_error = outcome.message[:MAX_ERROR]
        if outcome.kind == "unknown":
            row.state = DeliveryState.UNKNOWN
        elif outcome.kind == "permanent":
            row.state = DeliveryState.FAILED
            if outcome.bounce and claimed.contact_id is not None:
                campaign = session.scalar(select(Send.campaign)
                                          .where(Send.id == self.send_id))
                leave(session, [claimed.contact_id], ContactStatus.BOUNCED,
                      source=f"send {campaign}: {outcome.code} {outcome.message}",
                      campaign=campaign)
        elif row.attempts > len(self.delays):
            row.state = DeliveryState.FAILED
        else:
            row.state = DeliveryState.DEFERRED
            row.next_attempt_at = now + timedelta(seconds=self.delays[row.attempts - 1])

    def _next_retry(self, session: Session) -> datetime | None:
        return session.scalar(select(func.min(Delivery.next_attempt_at))
                              .where(Delivery.send_id == self.send_id,
                                     Delivery.state == DeliveryState.DEFERRED))

    def _hourly_room(self, session: Session) -> tuple[int, datetime | None]:
        """How many messages the hourly cap still allows, and when more will be. The
        cap is the relay's, so every send counts: those sent in the last hour, and those
        in flight in any running send (this one's, another process's, the worker's
        other sends)."""
        if self.cap <= 0:
            return 1 << 30, None
        since = utcnow() - timedelta(hours=1)
        recent = select(Delivery.sent_at).where(Delivery.sent_at > since)
        # Rows a dead run left `sending` stop counting after a while (its next run
        # settles them): a live run's have been claimed seconds ago.
        running = select(Send.id).where(Send.state == SendState.RUNNING)
        in_flight = select(Delivery.id).where(
            Delivery.send_id.in_(running), Delivery.state == DeliveryState.SENDING,
            Delivery.updated_at > utcnow() - IN_FLIGHT_FOR)
        used = sum(session.scalar(select(func.count()).select_from(rows.subquery())) or 0
                   for rows in (recent, in_flight))
        if used < self.cap:
            return self.cap - used, None
        oldest = session.scalar(select(func.min(Delivery.sent_at))
                                .where(Delivery.sent_at > since))
        if oldest is None:  # only messages in flight fill it: look again in a moment
            return 0, utcnow() + timedelta(seconds=5)
        return 0, oldest + timedelta(hours=1)

    # -- taking over -----------------------------------------------------------------

    def take_over(self, journal_of: Callable[[str], Path], run_id: str | None = None,
                  holder: int | None = None) -> Recovery:
        """Settle the rows dead runs left `sending`, each by its run's journal when there
        is one (sent, unknown, or never sent: queued again), else all `unknown`. Then
        this run (`run_id`, or a new id) takes the send: its id goes into the send row,
        the fence every later transaction checks on SQLite. On PostgreSQL (`holder`: the
        session holding the run's lock) the fence is that lock, and live runs go on."""
        self.run_id, self.holder = run_id or uuid.uuid4().hex, holder
        self.journal_of = journal_of
        with self.db.session() as session:
            send = session.get(Send, self.send_id)
            assert send is not None
            settled = self._settle_dead(session, send.run_id, starting=True)
            send.run_id = self.run_id
            return Recovery(self.run_id, settled.unknown, settled.journals)

    def _settle_dead(self, session: Session, last_run: str | None,
                     starting: bool = False) -> Settled:
        """The rows left `sending` by runs that are gone (on SQLite, by any run: one runs
        at a time). A row without a run is the last run's (`last_run`, a send begun
        before rows named their run). A dead run whose journal is still in use (its
        process lost its session and is stopping) keeps its rows; a run `starting` does
        not start beside it."""
        assert self.journal_of is not None
        by_run: dict[str, list[int]] = {}
        for row_id, run in _sql(session, "SELECT id, run_id FROM deliveries WHERE "
                                         "send_id = ? AND state = 'sending'", (self.send_id,)):
            by_run.setdefault(run or last_run or "", []).append(row_id)
        if starting and last_run:  # its journal, even when none of its claims committed
            by_run.setdefault(last_run, [])
        postgresql = is_postgresql(session)
        gone = runs.dead(session, list(by_run)) if postgresql else list(by_run)
        settled = Settled(0, [])
        for run in gone:
            path = self.journal_of(run) if run else None
            try:
                journal = read_journal(path, run) if path else None
            except JournalInUse:
                if not starting:  # its process is ending: settled at the next look
                    continue
                raise SendBusy("this campaign is being sent by another process on this "
                               "machine (its journal is in use)",
                               "let it finish, or stop it first") from None
            left = by_run[run]
            unknown = [i for i in left if journal is None or i in journal.transmitting]
            if journal is not None:
                self._settle(session, [i for i in left if i in journal.accepted],
                             DeliveryState.SENT)
                self._settle(session, [i for i in left if i not in journal.accepted
                                       and i not in journal.transmitting],
                             DeliveryState.QUEUED)
            self._settle(session, unknown, DeliveryState.UNKNOWN)
            settled.unknown += len(unknown)
            settled.journals += [path] if path is not None else []
        return settled

    def _fence(self, session: Session, run_id: str) -> None:
        """Stop if this run lost its lock (on PostgreSQL) or another run has taken the
        send (on SQLite)."""
        if self.holder is not None and is_postgresql(session):
            if not runs.holds(session, run_id, self.holder):
                raise SendBusy("this run lost its database lock (its session was cut); "
                               "the other runs settle its rows", "run the command again")
            return
        holder = _sql(session, "SELECT run_id FROM sends WHERE id = ?",
                      (self.send_id,)).scalar()
        if holder != run_id:
            raise SendBusy("another run has taken over this send", "let it finish")

    def _settle(self, session: Session, ids: list[int], state: DeliveryState) -> None:
        now = _stamp(session, utcnow())
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            if state == DeliveryState.SENT:
                _sql(session, f"{_SENT}IN ({marks})", (now, now, *chunk))
            elif state == DeliveryState.UNKNOWN:
                _sql(session, f"UPDATE deliveries SET state = 'unknown', updated_at = ?, "
                              f"last_error = ? WHERE id IN ({marks})", (now, _STOPPED, *chunk))
            else:
                self._set_state(session, chunk, state, now)
