"""A run of one send: it drains the send's due rows through parallel connections, at
the configured pace, and stops cleanly (Ctrl-C, a fatal error, too many connection
failures). Between two commits the run's journal says which messages left and which
the server took, so a killed run is settled exactly by the next one (store.py)."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from queue import Empty, SimpleQueue

from ..config import Settings
from ..db import Database, utcnow
from ..dberrors import sqlite_file
from ..errors import CitesmailError
from ..intake import apply_pending, intake_path
from ..message import MessageTemplate
from ..tracking.measure import measurement_for, send_mode
from ..verp import ReturnPath
from .journal import Journal, JournalError, journal_path
from .locks import Busy, ProcessLock
from .sendlog import audience_of
from .store import Claimed, Result, SendBusy, SqlStore, Store
from .transports import Envelope, Outcome, Transport

PAUSE_AFTER = 10  # consecutive connection failures
LONG_WAIT = timedelta(minutes=5)
BATCH = 64  # rows claimed, and results recorded, per transaction
RECORD_EVERY = 0.25  # seconds: results are recorded at least this often
ANNOUNCE_EVERY = 60.0  # seconds: a wait is told again at most this often


class SendPaused(CitesmailError):
    """The SMTP server kept failing (or refused the login): the send stops, resumable."""


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
        self.rate = self.per_second = per_second
        self.next_at = time.monotonic()
        self.lock = threading.Lock()

    def share(self, runs: int) -> None:
        """The rate is the relay's: `runs` runs going on share it evenly."""
        self.per_second = self.rate / max(runs, 1)

    def wait(self, stop: threading.Event) -> None:
        if self.per_second <= 0:
            return
        with self.lock:
            at = max(self.next_at, time.monotonic())
            self.next_at = at + 1 / self.per_second
        delay = at - time.monotonic()
        if delay > 0:
            stop.wait(delay)  # Ctrl-C does not wait for the pace


def _remove(journals: list[Path]) -> None:
    for path in journals:
        path.unlink(missing_ok=True)


Deliver = Callable[[Transport, Claimed, Claimed | None], None]
_NONE_YET = object()  # the queue had nothing more when a connection looked


class _Connections(contextlib.AbstractContextManager["_Connections"]):
    """One thread per transport, each taking the claimed rows from one queue in turn
    (an executor made a future, a work item and a semaphore round per message). A
    transport that is not parallel sends in the calling thread."""

    def __init__(self, transports: list[Transport], deliver: Deliver) -> None:
        self.transports, self.deliver = transports, deliver
        self.work: SimpleQueue[Claimed | None] = SimpleQueue()
        self.threads = [threading.Thread(target=self._serve, args=(transport,),
                                         name=f"citesmail-send-{number}", daemon=True)
                        for number, transport in enumerate(transports)
                        if transport.parallel]

    def __enter__(self) -> _Connections:
        for thread in self.threads:
            thread.start()
        return self

    def submit(self, claimed: Claimed) -> None:
        if self.threads:
            self.work.put(claimed)
        else:
            self.deliver(self.transports[0], claimed, None)

    def _serve(self, transport: Transport) -> None:
        """Each row with the one after it when that one is already waiting: the
        connection can announce the next message with this one."""
        claimed: Claimed | None = self.work.get()
        while claimed is not None:
            following: object = _NONE_YET
            with contextlib.suppress(Empty):  # (another connection may take it first)
                following = self.work.get_nowait()
            with contextlib.suppress(BaseException):  # deliver reports its own failures
                self.deliver(transport, claimed,
                             following if isinstance(following, Claimed) else None)
            claimed = self.work.get() if following is _NONE_YET else \
                following if isinstance(following, Claimed) else None

    def __exit__(self, *exc: object) -> None:
        """Every row handed over is delivered (or handed back) before this returns."""
        for _ in self.threads:
            self.work.put(None)
        for thread in self.threads:
            thread.join()


class SendRun:
    """Drains one send's due rows through `connections` parallel transports."""

    def __init__(self, db: Database, send_id: int, settings: Settings,
                 make_transport: Callable[[], Transport], *,
                 stop: threading.Event | None = None,
                 progress: Callable[[dict[str, int]], None] | None = None,
                 notice: Callable[[str], None] | None = None, join: bool = False) -> None:
        """`join` (PostgreSQL): drain the send beside the other runs that join it."""
        self.db, self.send_id, self.settings = db, send_id, settings
        if join and not db.is_postgresql:
            raise CitesmailError("only PostgreSQL lets several processes drain one send",
                                 "SQLite sends with one process: leave out --join")
        self.join = join
        self.notice = notice  # told when the run waits (for a retry, for the cap)
        self.announced = ("", 0.0)  # what it last said it waited for, and when
        self.make_transport = make_transport
        # Asked from outside (Ctrl-C, the worker stopping) or decided here (a pause): the
        # outside event is only read, so one send's pause does not stop the worker.
        self.outer_stop = stop or threading.Event()
        self.stop = threading.Event()
        self.progress = progress
        self.return_path = ReturnPath(settings)  # the envelope sender of each message
        self.delays = settings.delivery.retry_delays
        self.connections = settings.delivery.connections
        self.pace = _Pace(settings.delivery.rate_per_second)
        self.intake = intake_path(db, settings.workspace)  # what `serve` took in
        self.store: Store = SqlStore(db, send_id, retry_delays=self.delays,
                                     hourly_cap=settings.delivery.hourly_cap,
                                     intake=self.intake,
                                     paced=settings.delivery.rate_per_second > 0)
        campaign = self.store.campaign()
        measurement = measurement_for(settings, send_id,
                                      *send_mode(db, send_id, settings.tracking))
        self.template = MessageTemplate(campaign, settings,
                                        audience=audience_of(db, campaign.segment),
                                        measurement=measurement)
        url = db.engine.url
        database_file = sqlite_file(db.engine)
        self._database_file = str(database_file) if database_file is not None else None
        self._database = url.render_as_string(hide_password=True)
        self.run_id = ""
        self.journal: Journal | None = None
        # Claimed ahead: enough to keep the connections busy, no more than a second's worth
        # at a slow rate (an unsubscribe is checked when its row is claimed).
        rate = settings.delivery.rate_per_second
        self.batch = BATCH if rate <= 0 else max(self.connections, min(BATCH, int(rate)))
        self.finished: list[Result] = []  # results to record
        self.drained = False  # after an error, everything in hand was recorded
        self.wake = threading.Event()  # the connections wake the loop
        self.wake_at = 1  # results waiting that are worth waking it for
        self.failures_in_a_row = 0
        self.last_connection_error = ""
        self.paused = False
        self.fatal_error = ""
        self.wire = False  # the transport takes messages as DATA carries them

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> RunResult:
        """Drain the send. Only one process at a time runs a given send (a lock that
        dies with its holder), so rows left `sending` can only be a dead run's."""
        lock = ProcessLock(self.db, f"send-{self.send_id}", shared=self.join)
        try:
            lock.acquire()
        except Busy as busy:
            raise SendBusy(f"this campaign is being sent by another process ({busy.holder})",
                           "let it finish, or stop it first" + (
                               "; with --join this process helps it (if it joins too)"
                               if self.db.is_postgresql else "")) from None
        try:  # what `serve` took in (another process at it: `_claim` reads it pending)
            apply_pending(self.db, self.intake, wait=False)
            self.run_id = uuid.uuid4().hex
            holder = lock.hold_run(self.run_id)
            recovery = self.store.take_over(self.journal_path, self.run_id, holder)
            _remove(recovery.previous)  # the database holds what they said now
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
            result.recovered = recovery.unknown
            return result
        finally:
            lock.release()

    def journal_path(self, run_id: str) -> Path:
        return journal_path(self._database_file, self.settings.workspace, self._database,
                            self.send_id, run_id)

    def _run_with_transports(self) -> RunResult:
        first = self.make_transport()
        transports = [first]
        self.wire = first.wire
        transports += [self.make_transport()
                       for _ in range(self.connections - 1 if first.parallel else 0)]
        results: SimpleQueue[Result] = SimpleQueue()
        journal = self.journal
        assert journal is not None

        def deliver(transport: Transport, claimed: Claimed, following: Claimed | None
                    ) -> None:
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
                        self._deliver(transport, journal, claimed, data, following)
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
            with _Connections(transports, deliver) as connections:
                try:
                    return self._loop(connections, results, outstanding)
                except BaseException:
                    self.stop.set()
                    self.drained = self._drain(results, outstanding[0])
                    raise
        finally:
            for transport in transports:
                transport.close()

    def _deliver(self, transport: Transport, journal: Journal, claimed: Claimed,
                 data: bytes, following: Claimed | None) -> Outcome:
        delivery_id = claimed.delivery_id
        try:
            sender = self.return_path.sender(claimed.recipient.contact_id, self.send_id)
            outcome = transport.send(sender, claimed.recipient.email, data,
                                     lambda: journal.transmitting(delivery_id),
                                     then=self._envelope(following))
        except JournalError as exc:  # its line could not be written: it did not go
            outcome = Outcome("connection", None, exc.problems[0].message, fatal=True)
        except CitesmailError as exc:  # e.g. the login refused: nothing was sent
            outcome = Outcome("connection", None, str(exc), fatal=True)
        except Exception as exc:  # unforeseen: the message may have gone
            outcome = Outcome("unknown", None, f"{type(exc).__name__}: {exc}")
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

    def _envelope(self, claimed: Claimed | None) -> Envelope | None:
        """The envelope of the message a connection sends next, when it is already known
        and goes at once (not when the run stops, nor at a paced rate)."""
        if claimed is None or self.stop.is_set() or self.pace.per_second > 0:
            return None
        return (self.return_path.sender(claimed.recipient.contact_id, self.send_id),
                claimed.recipient.email)

    def _halt(self, why: str) -> None:
        """Stop sending for a reason no retry fixes; the first reason is the one told."""
        self.fatal_error = self.fatal_error or why
        self.stop.set()

    def _drain(self, results: SimpleQueue[Result],
               outstanding: int) -> bool:
        """After an error: wait for the messages in hand and record what became of them
        (best effort: the journal tells the next run what this one could not record)."""
        self.finished.extend(results.get() for _ in range(outstanding))
        try:
            left = self.store.record(self.finished)
        except Exception:
            return False  # the journal keeps what they were, for the next run
        self.finished.clear()
        return not left

    def _build(self, claimed: Claimed) -> bytes | Outcome:
        try:
            if self.wire:  # as DATA carries it, without scanning each message for dots
                return self.template.build_wire(claimed.recipient)
            return self.template.build(claimed.recipient)
        except UnicodeEncodeError:
            return Outcome("permanent", None, "the address needs SMTPUTF8 (non-ASCII before "
                           "the @), which citesmail does not use")

    def _loop(self, connections: _Connections, results: SimpleQueue[Result],
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
                step = self.store.step(self.run_id, finished, want, idle=quiet)
                finished.clear()  # only once committed: else the drain records them
                self.pace.share(step.runs)
                _remove(step.settled)
                last_record = time.monotonic()
                if want and len(step.claimed) < want:  # the queue is dry for now
                    claim_again = last_record + RECORD_EVERY
                for claimed in step.claimed:
                    connections.submit(claimed)
                    outstanding[0] += 1
                if step.counts is not None and not finished:  # nothing to do right now
                    result = self._idle(step.counts, step.next_retry,
                                        step.cap_until if step.room == 0 else None)
                    if result is not None:
                        return result
                    continue
            if not outstanding[0]:
                continue
            self._collect(results, outstanding)
            if self.progress and time.monotonic() - last_progress > 0.5:
                last_progress = time.monotonic()
                self.progress(self.store.counts())

    def _collect(self, results: SimpleQueue[Result], outstanding: list[int]) -> None:
        """Sleep until enough results are in to claim the next batch (or all of them, at
        the end), or a failure, or RECORD_EVERY has passed; then take them."""
        batch = self.batch
        self.wake_at = outstanding[0] - batch if outstanding[0] > batch else outstanding[0]
        if results.qsize() < self.wake_at:
            self.wake.wait(RECORD_EVERY)
        self.wake.clear()
        while True:
            try:
                item = results.get_nowait()
            except Empty:
                return
            self.finished.append(item)
            outstanding[0] -= 1
            if item[1] is not None:
                self._watch_connection(item[1])

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
            self.store.finish()
            return RunResult(state, True)
        # Capped, nothing can go before the cap frees a slot, whatever is due meanwhile.
        wake = cap_until or next_retry or utcnow()
        if wake - utcnow() > LONG_WAIT:
            return RunResult(state, False, next_retry, waiting_for_cap=cap_until)
        self._announce(wake, state, capped=cap_until is not None)
        self.stop.wait(min(max((wake - utcnow()).total_seconds(), 0.05), 1.0))
        return None
