"""Scheduled sends: APScheduler 3.11 jobs in one `citesmail worker` process.

`schedule` stores the rendered campaign (the `sends` row, state `scheduled`) and a job
in APScheduler's SQLAlchemyJobStore, on the same database. The worker runs the job at
its time: the job only *starts* the send (recipients snapshotted then); the send log
makes a second start harmless. A time missed by more than `[schedule] misfire_grace`
marks the send `missed`: it is never sent silently late.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from .audience.pending import purge_pending
from .audience.retention import purge_measured, span
from .config import Settings
from .db import Database
from .delivery import SendBusy, SendRun, start_scheduled, summary
from .delivery.locks import Busy, Heartbeat, Liveness, ProcessLock, bound_connections
from .delivery.outgoing import OutgoingSender
from .delivery.sendlog import cancel_scheduled, mark_missed, running_campaigns, store_scheduled
from .delivery.transports import make_transport
from .errors import CitesmailError
from .message import Renderable

JOB_FUNCTION = "citesmail.scheduler:run_scheduled_send"
log = logging.getLogger("citesmail.worker")


def local_time(moment: datetime, tz: ZoneInfo) -> str:
    """A moment as the worker's log says it: in the configured zone, with its offset
    ('2031-01-01 09:00:00+01:00'), so that no line is read in the wrong zone."""
    return moment.astimezone(tz).isoformat(" ", "seconds")


def job_id(campaign: str) -> str:
    return f"send:{campaign}"


# -- times --------------------------------------------------------------------------


@dataclass(frozen=True)
class When:
    moment: datetime  # aware, in the zone asked
    ambiguous: bool


def parse_local_time(text_value: str, zone: str) -> When:
    """'YYYY-MM-DD HH:MM[:SS]' in `zone`; a time the clocks skip is refused."""
    try:
        tz = ZoneInfo(zone)
    except Exception:
        raise CitesmailError(f"unknown time zone '{zone}'", "e.g. Europe/Paris") from None
    for pattern in ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"):
        try:
            naive = datetime.strptime(text_value.strip(), pattern)
            break
        except ValueError:
            continue
    else:
        raise CitesmailError(f"cannot read the time '{text_value}'",
                             'write it as "YYYY-MM-DD HH:MM", e.g. "2027-01-19 09:00"')
    first, second = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    back = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if back != naive:
        raise CitesmailError(
            f"{text_value} does not exist in {zone}: the clocks skip that hour",
            "choose a time before or after the change to summer time")
    return When(first, first.utcoffset() != second.utcoffset())


# -- the job store --------------------------------------------------------------------


def _scheduler(db: Database, settings: Settings, blocking: bool = False) -> Any:
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    kind = BlockingScheduler if blocking else BackgroundScheduler
    return kind(
        jobstores={"default": SQLAlchemyJobStore(engine=db.engine),
                   "memory": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(4)},
        job_defaults={"coalesce": True, "max_instances": 1,
                      "misfire_grace_time": int(settings.schedule.misfire_grace.total_seconds())},
        timezone=UTC,
    )


def _with_store(db: Database, settings: Settings, action: Any) -> Any:
    """Run `action(scheduler)` against the job store without running any job."""
    scheduler = _scheduler(db, settings)
    scheduler.start(paused=True)
    try:
        return action(scheduler)
    finally:
        scheduler.shutdown(wait=False)


def schedule_send(db: Database, settings: Settings, rendered: Renderable,
                  segment: str, source: str, when: When) -> bool:
    """Store the campaign and its job; returns True when it replaced a schedule."""
    at = when.moment.astimezone(UTC)
    if at <= datetime.now(UTC):
        raise CitesmailError(f"{when.moment:%Y-%m-%d %H:%M:%S %Z} is in the past",
                             "choose a time to come")
    replaced = store_scheduled(db, rendered, segment, source, at)
    _with_store(db, settings, lambda scheduler: scheduler.add_job(
        JOB_FUNCTION, "date", run_date=at, id=job_id(rendered.slug), args=[rendered.slug],
        replace_existing=True, name=rendered.slug))
    return replaced


def unschedule(db: Database, settings: Settings, campaign: str) -> None:
    cancel_scheduled(db, campaign)

    def remove(scheduler: Any) -> None:
        if scheduler.get_job(job_id(campaign)) is not None:
            scheduler.remove_job(job_id(campaign))

    _with_store(db, settings, remove)


# -- the worker -----------------------------------------------------------------------


def worker_holder(db: Database) -> str | None:
    """Who runs the worker of this database ('pid 1234' on SQLite), or None when no
    worker runs: the worker lock tells, as it dies with its process."""
    lock = ProcessLock(db, "worker")
    try:
        lock.acquire()
    except Busy as busy:
        return busy.holder
    lock.release()
    return None


class WorkerLock(ProcessLock):
    """Exactly one active scheduler per database (on PostgreSQL, others wait)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        super().__init__(db, "worker", Liveness(settings.schedule.takeover.total_seconds())
                         if db.is_postgresql else None)

    def take(self) -> None:
        """The lock, or Busy."""
        super().acquire()

    def acquire(self) -> None:
        try:
            super().acquire()
        except Busy as busy:
            raise CitesmailError(f"another citesmail worker is running ({busy.holder})",
                                 "only one worker schedules sends on SQLite; this one "
                                 "stops (with PostgreSQL it would wait as a standby)") from None


@dataclass
class WorkerContext:
    db: Database
    settings: Settings
    stop: threading.Event
    running: set[str]
    lock: threading.Lock


_context: WorkerContext | None = None


def run_scheduled_send(campaign: str) -> None:
    """The job: start (or resume) the campaign's send and drain what is due."""
    ctx = _context
    if ctx is None:
        raise RuntimeError("run_scheduled_send runs inside citesmail worker")
    with ctx.lock:
        if campaign in ctx.running:
            return
        ctx.running.add(campaign)
    try:
        prepared = start_scheduled(ctx.db, campaign)
        if prepared is None:
            log.info("%s: nothing to send (already done or missed)", campaign)
            return
        log.info("%s: %s, %d recipients", campaign,
                 "resuming" if prepared.resumed else "starting", prepared.total)
        result = SendRun(ctx.db, prepared.send_id, ctx.settings,
                         lambda: make_transport(ctx.settings), stop=ctx.stop,
                         notice=lambda text: log.info("%s: %s", campaign, text),
                         join=ctx.db.is_postgresql).run()
        state = "done" if result.finished else "stopped" if result.stopped else "waiting"
        log.info("%s: %s (%s)", campaign, state, summary(result.counts))
    except SendBusy:
        log.info("%s: being sent by another process; left to it", campaign)
    except CitesmailError as exc:
        log.error("%s: %s", campaign, exc)
    except OSError as exc:  # a file the send needs (its journal, the intake): one line
        log.error("%s: %s: %s (the send resumes at the next start or schedule)", campaign,
                  exc.filename or type(exc).__name__, exc.strerror or exc)
    finally:
        with ctx.lock:
            ctx.running.discard(campaign)


def _resume_due(scheduler: Any) -> None:
    """Sends left running (interrupted, or waiting for retries) are picked up again."""
    ctx = _context
    assert ctx is not None
    for campaign in running_campaigns(ctx.db):
        if campaign not in ctx.running:
            scheduler.add_job(run_scheduled_send, args=[campaign], jobstore="memory",
                              id=f"resume:{campaign}", replace_existing=True)


T = TypeVar("T")
PURGE_EVERY_HOURS = 1  # pending sign-ups older than [subscribe] pending_days go, and
# clicks and opens recorded per person older than [tracking] retention


def _purging(db: Database, what: str, purge: Callable[[Session], T]) -> T | None:
    """One hourly purge in its transaction; None when it could not run (the database
    locked long, say: the next hour tries again)."""
    try:
        with db.session() as session:
            return purge(session)
    except CitesmailError as exc:
        log.error("purging %s: %s", what, exc)
        return None


def _purge_pending(db: Database, days: int) -> None:
    """Forget the sign-ups never confirmed in time."""
    purged = _purging(db, "pending sign-ups", lambda session: purge_pending(session, days))
    if purged:
        log.info("%d pending sign-up%s purged (unconfirmed for more than %d days)",
                 purged, "s" if purged != 1 else "", days)


def purge_measured_events(db: Database, retention: timedelta) -> None:
    """Delete the clicks and opens recorded per person past their retention."""
    purged = _purging(db, "clicks and opens",
                      lambda session: purge_measured(session, retention))
    if purged is not None and (purged.clicks or purged.opens):
        log.info("%s (recorded more than %s ago)", purged.summary(), span(retention))


def fetch_inbox() -> None:
    """The [inbox] job: read the IMAP folder and act on what came back."""
    from .inbox import fetch

    ctx = _context
    if ctx is None:
        raise RuntimeError("fetch_inbox runs inside citesmail worker")
    try:
        report = fetch(ctx.db, ctx.settings)
    except CitesmailError as exc:
        log.error("inbox: %s (tried again in %s)", exc, ctx.settings.inbox.poll_every)
        return
    log.info("inbox: %s", report.summary())


def _mark_missed(db: Database, tz: ZoneInfo, event: Any) -> None:
    campaign = event.job_id.removeprefix("send:")
    mark_missed(db, campaign)
    log.warning("%s: MISSED: its time %s passed while no worker ran (more than the "
                "grace); not sent", campaign, local_time(event.scheduled_run_time, tz))


def run_worker(db: Database, settings: Settings, stop: threading.Event) -> None:
    """Block until `stop` is set; then finish the messages in hand and return. On
    PostgreSQL a worker that finds another active waits as its standby, and takes over
    when the other dies; one that loses its lock stops scheduling and waits again."""
    lock = WorkerLock(db, settings)
    if not db.is_postgresql:  # the lock is a file: one machine, one worker
        lock.acquire()
        try:
            _run_active(db, settings, stop, lambda: True)
        finally:
            lock.release()
        return
    liveness = lock.liveness
    assert liveness is not None
    bound_connections(db, liveness)  # a network cut stops no thread for long
    while _wait_as_standby(lock, liveness, stop):
        heartbeat = Heartbeat(lock, liveness)
        lost = False
        try:
            lost = _run_active(db, settings, stop, heartbeat.alive)
        finally:
            idle = heartbeat.stop()
            lock.release(lost=lost, busy=not idle)
        if not lost:
            return
        log.info("waiting as a standby")


def _wait_as_standby(lock: WorkerLock, liveness: Liveness, stop: threading.Event) -> bool:
    """Take the worker lock, waiting as long as another worker holds it; False when
    `stop` came first."""
    said = ""
    while not stop.is_set():
        try:
            lock.take()
        except Busy as busy:
            if busy.holder != said:
                log.info("standby: another worker is active (%s); taking over within %ss "
                         "of its end", busy.holder, f"{liveness.takeover:g}")
                said = busy.holder
        except OperationalError as exc:  # the server out of reach: ask again
            if said != "unreachable":
                log.error("standby: cannot reach the database (%s); trying again",
                          str(exc.orig).strip().splitlines()[0] if exc.orig else exc)
                said = "unreachable"
        else:
            if said:
                log.info("taking over: the active worker stopped")
            return True
        stop.wait(liveness.poll)
    return False


def _run_active(db: Database, settings: Settings, stop: threading.Event,
                alive: Callable[[], bool]) -> bool:
    """Schedule until `stop` is set (False) or `alive()` says the lock is lost (True)."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED

    global _context
    scheduler = _scheduler(db, settings)
    halt = threading.Event()  # the sends in hand stop on either
    _context = WorkerContext(db, settings, halt, set(), threading.Lock())
    scheduler.add_listener(lambda event: _mark_missed(db, settings.tz, event),
                           EVENT_JOB_MISSED)
    scheduler.add_listener(lambda event: log.error("job %s failed: %s", event.job_id,
                                                   event.exception), EVENT_JOB_ERROR)
    # Confirmation emails queued by `contacts resubscribe` or by a serve that stopped.
    sender = OutgoingSender(db, settings, lambda: make_transport(settings), log.info)
    lost = False
    try:
        scheduler.start()
        sender.start()
        log.info("worker started (pid %d); misfire grace %s", os.getpid(),
                 settings.schedule.misfire_grace)
        _add_jobs(scheduler, db, settings)
        while not stop.wait(0.25):
            if not alive():
                lost = True
                scheduler.pause()  # at once: another worker may take over any moment
                log.error("worker lock lost (its database session stopped answering): "
                          "stopped scheduling")
                break
            scheduler.wakeup()  # notice jobs that other processes added to the store
    finally:
        halt.set()
        log.info("worker stopping: finishing the messages in hand")
        sender.close()
        scheduler.shutdown(wait=True)
        _context = None
        log.info("worker stopped")
    return lost


def _add_jobs(scheduler: Any, db: Database, settings: Settings) -> None:
    """The worker's own jobs (resume, purges, inbox), and a line per scheduled send."""
    _resume_due(scheduler)
    scheduler.add_job(_resume_due, "interval", args=[scheduler], seconds=30,
                      jobstore="memory", id="resume-due")
    days = settings.subscribe.pending_days
    scheduler.add_job(_purge_pending, "interval", args=[db, days],
                      hours=PURGE_EVERY_HOURS, jobstore="memory", id="purge-pending",
                      next_run_time=datetime.now(UTC))  # at start, then every hour
    scheduler.add_job(purge_measured_events, "interval",
                      args=[db, settings.tracking.retention], hours=PURGE_EVERY_HOURS,
                      jobstore="memory", id="purge-measured",
                      next_run_time=datetime.now(UTC))
    if settings.inbox.enabled:
        scheduler.add_job(fetch_inbox, "interval", jobstore="memory", id="inbox-fetch",
                          seconds=settings.inbox.poll_every.total_seconds(),
                          next_run_time=datetime.now(UTC))
        log.info("inbox: %s every %s", settings.inbox.host, settings.inbox.poll_every)
    for job in scheduler.get_jobs(jobstore="default"):
        log.info("%s: scheduled for %s", job.name,
                 local_time(job.next_run_time, settings.tz))
