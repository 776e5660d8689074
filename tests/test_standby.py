"""Standby workers on PostgreSQL, with real `citesmail worker` processes, a real SMTP
server and the machine's PostgreSQL: the active worker killed (before a due time, during
a send) or cut from the database; the standby takes over and mails everyone once."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from citesmail.db import Delivery, open_database
from citesmail.states import DeliveryState
from tests.cli.test_delivery_commands import smtp_env, with_audience
from tests.conftest import REPLAY, run
from tests.smtp_server import SmtpServer
from tests.test_scheduler import CITESMAIL, PARIS, at, delivered, sleep_until, wait_for

TAKEOVER = 3.0  # seconds: [schedule] takeover, short so that the tests stay fast
pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


class Worker:
    """A `citesmail worker` process whose log lines are collected as they come."""

    def __init__(self, workspace: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([str(CITESMAIL), "worker"], cwd=workspace, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def said(self, words: str) -> Callable[[], bool]:
        return lambda: any(words in line for line in self.lines)

    def wait(self, words: str, seconds: float = 60) -> None:
        assert wait_for(self.said(words), seconds), f"never said {words!r}: {self.log}"

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self._end()

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self._end()
        return self.log

    def _end(self) -> None:
        self.process.wait(timeout=60)
        self.reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def cluster(workspace: Path, db_url: str) -> Iterator[Callable[..., list[Worker]]]:
    """Starts workers on one PostgreSQL schema, with an SMTP server; kills what is left."""
    started: list[Worker] = []
    saved = dict(os.environ)
    server = SmtpServer().__enter__()

    def start(n: int, recipients: int = 5, **extra: str) -> list[Worker]:
        env = smtp_env(server.port, CITESMAIL_DATABASE_URL=f'"{db_url}"',
                       CITESMAIL_SCHEDULE_TAKEOVER=f'"{TAKEOVER:g}s"', **extra)
        os.environ.update(env)
        if not started:
            with_audience(workspace, recipients)
        workers = [Worker(workspace, dict(os.environ)) for _ in range(n)]
        started.extend(workers)
        return workers

    start.server = server  # type: ignore[attr-defined]
    yield start
    for worker in started:
        if not worker.process.stdout or not worker.process.stdout.closed:
            worker.kill()
    server.__exit__(None, None, None)
    os.environ.clear()
    os.environ.update(saved)


def active_and_standby(workers: list[Worker]) -> tuple[Worker, Worker]:
    first, second = workers
    assert wait_for(lambda: first.said("worker started")() or second.said("worker started")())
    active, standby = (first, second) if first.said("worker started")() else (second, first)
    standby.wait("standby: another worker is active (citesmail on ")
    assert not standby.said("worker started")()
    return active, standby


def schedule_in(seconds: float) -> datetime:
    moment = (datetime.now(PARIS) + timedelta(seconds=seconds)).replace(microsecond=0)
    scheduled = run("schedule", REPLAY, "--at", at(moment))
    assert scheduled.exit_code == 0, scheduled.output
    return moment


def once_each(server: SmtpServer, n: int) -> None:
    received = server.handler.received
    assert set(received.values()) == {1} and len(received) == n, received


def test_the_active_worker_killed_before_the_due_time(
        cluster: Callable[..., list[Worker]]) -> None:
    server: SmtpServer = cluster.server  # type: ignore[attr-defined]
    active, standby = active_and_standby(cluster(2))
    due = schedule_in(6)
    sleep_until(due - timedelta(seconds=1))  # what the test is about: just before the time
    active.kill()
    standby.wait("taking over: the active worker stopped", TAKEOVER + 5)
    assert wait_for(delivered(server, 5))
    output = standby.stop()
    assert "done (sent 5)" in output, output
    once_each(server, 5)


def test_the_active_worker_killed_during_a_send(cluster: Callable[..., list[Worker]],
                                               db_url: str) -> None:
    server: SmtpServer = cluster.server  # type: ignore[attr-defined]
    workers = cluster(2, recipients=200, CITESMAIL_DELIVERY_RATE_PER_SECOND="40")
    active, standby = active_and_standby(workers)
    schedule_in(4)
    assert wait_for(delivered(server, 30))
    active.kill()
    standby.wait("taking over", TAKEOVER + 5)
    standby.wait("done (", 120)
    standby.stop()
    received = server.handler.received
    assert max(received.values()) == 1, "someone was mailed twice"
    db = open_database(db_url)
    with db.session(write=False) as session:
        unknown = set(session.scalars(select(Delivery.email).where(
            Delivery.state == DeliveryState.UNKNOWN)))
    db.close()
    # The dead worker's journal (this machine) settled its rows: at most one per
    # connection was on the wire when it died, and only those may be unknown.
    assert len(unknown) <= 1 and set(received) | unknown == {f"p{i}@example.org"
                                                             for i in range(200)}


def test_the_active_worker_cut_from_the_database_stops_scheduling(
        cluster: Callable[..., list[Worker]], db_url: str) -> None:
    server: SmtpServer = cluster.server  # type: ignore[attr-defined]
    active, standby = active_and_standby(cluster(2))
    engine = create_engine(db_url)
    with engine.begin() as connection:  # the worker lock's session, as a network cut ends it
        cut = connection.execute(text(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l WHERE l.locktype = "
            "'advisory' AND l.objsubid = 1 AND l.granted AND l.objid = CAST(hashtext("
            "'citesmail:worker:' || current_database() || ':' || current_schema()) "
            "AS integer)::oid")).scalars().all()
    engine.dispose()
    assert cut == [True]
    active.wait("worker lock lost", TAKEOVER)
    standby.wait("taking over: the active worker stopped", TAKEOVER + 5)
    # The worker that lost its lock waits in turn: one scheduler, the send made once.
    active.wait("standby: another worker is active")
    schedule_in(4)
    assert wait_for(delivered(server, 5))
    standby.wait("done (sent 5)")
    assert active.log.count("worker started") == 1
    active.stop()
    standby.stop()
    once_each(server, 5)
