"""Standby workers on PostgreSQL, with real `citesmail worker` processes, a real SMTP
server and the machine's PostgreSQL: the active worker killed (before a due time, during
a send) or cut from the database; the standby takes over and mails everyone once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from citesmail.db import Delivery, open_database
from citesmail.delivery.locks import Liveness
from citesmail.states import DeliveryState
from tests.cli.test_delivery_commands import smtp_env, with_audience
from tests.conftest import REPLAY, run
from tests.netcut import CutUnavailable, NetworkCut, server_ports
from tests.smtp_server import SmtpServer
from tests.test_scheduler import CITESMAIL, PARIS, at, delivered, sleep_until, wait_for

TAKEOVER = 3.0  # seconds: [schedule] takeover, short so that the tests stay fast
pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


class Worker:
    """A `citesmail worker` process whose log lines are collected as they come."""

    def __init__(self, workspace: Path, env: dict[str, str],
                 wrap: Callable[[list[str]], list[str]] | None = None) -> None:
        command = [str(CITESMAIL), "worker"]
        self.process = subprocess.Popen(wrap(command) if wrap else command, cwd=workspace,
                                        env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.times: list[float] = []  # when each line was read (time.monotonic)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.times.append(time.monotonic())
            self.lines.append(line)

    def said(self, words: str) -> Callable[[], bool]:
        return lambda: any(words in line for line in self.lines)

    def wait(self, words: str, seconds: float = 60) -> None:
        assert wait_for(self.said(words), seconds), f"never said {words!r}: {self.log}"

    def when(self, words: str, seconds: float = 60) -> float:
        """When the first line saying `words` was read."""
        self.wait(words, seconds)
        return next(moment for moment, line in zip(self.times, self.lines, strict=False)
                    if words in line)

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

    def start(n: int, recipients: int = 5,
              wrap: Callable[[list[str]], list[str]] | None = None,
              **extra: str) -> list[Worker]:
        env = smtp_env(server.port, CITESMAIL_DATABASE_URL=f'"{db_url}"',
                       CITESMAIL_SCHEDULE_TAKEOVER=f'"{TAKEOVER:g}s"', **extra)
        os.environ.update(env)
        if not started:
            with_audience(workspace, recipients)
        workers = [Worker(workspace, dict(os.environ), wrap) for _ in range(n)]
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


@pytest.fixture
def network_cut(db_url: str) -> Iterator[NetworkCut]:
    """A chain of the test's own in iptables and a cgroup for the worker to cut; both
    removed at the end, the test passed or not. Needs root and iptables: CI has both
    (scripts/test.sh installs iptables), so there a missing one fails the test."""
    try:
        cut = NetworkCut()
    except CutUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"cannot cut the network: {exc}")
        pytest.skip(f"cannot cut the network (not root? iptables missing?): {exc}")
    try:
        yield cut
    finally:
        cut.close()
        # A test that failed during the cut leaves the cut worker's sessions on the
        # server (it never heard of their end); they would hold up the schema's drop.
        # Only sessions older than the cut: a port may have been used again since.
        engine = create_engine(db_url)
        with engine.begin() as connection:
            connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE client_addr "
                "= '127.0.0.1' AND client_port = ANY(:ports) AND backend_start < "
                "to_timestamp(:at)"), {"ports": sorted(cut.ports), "at": cut.cut_at})
        engine.dispose()


def sessions(db_url: str, ports: set[int]) -> dict[int, str]:
    """The server's sessions from these client ports (127.0.0.1): port -> application_name."""
    engine = create_engine(db_url)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT client_port, application_name FROM pg_stat_activity "
            "WHERE client_addr = '127.0.0.1' AND client_port = ANY(:ports)"),
            {"ports": sorted(ports)}).all()
    engine.dispose()
    return {int(port): name for port, name in rows}


def test_the_active_worker_cut_from_the_network_before_the_due_time(
        network_cut: NetworkCut, cluster: Callable[..., list[Worker]], db_url: str) -> None:
    server: SmtpServer = cluster.server  # type: ignore[attr-defined]
    [active] = cluster(1, wrap=network_cut.command)
    active.wait("worker started")
    [standby] = cluster(1)
    standby.wait("standby: another worker is active (citesmail on ")
    holder = f"citesmail on {socket.gethostname()} (pid {active.process.pid})"[:63]
    due = schedule_in(6)
    sleep_until(due - timedelta(seconds=1))  # the cut comes just before the time
    cut_at = time.monotonic()
    ports = network_cut.cut(active.process.pid)
    before = sessions(db_url, ports)
    assert holder in before.values(), before  # the worker lock's session, cut with the rest
    took_over = standby.when("taking over: the active worker stopped", TAKEOVER + 10)
    lost = active.when("worker lock lost (its database session stopped answering): "
                       "stopped scheduling")
    # Never two active schedulers: the cut worker stopped before the standby started.
    assert lost < took_over
    assert took_over - cut_at <= TAKEOVER, f"taken over {took_over - cut_at:.2f} s after"
    # Nothing of the cut reached the server (not even a close): its keepalives dropped
    # the lock's session, and drop the cut worker's other sessions too, which would
    # otherwise stay for hours and fill max_connections, cut after cut.
    assert holder not in sessions(db_url, ports).values()
    assert wait_for(lambda: not sessions(db_url, ports), Liveness(TAKEOVER).drop_after + 5), \
        sessions(db_url, ports)
    assert wait_for(delivered(server, 5))
    standby.wait("done (sent 5)")
    # Its threads' questions gave up (they would wait for TCP's retries, about 15
    # minutes): the cut worker has stopped, and waits as a standby that cannot reach
    # the server; what it tries to open never reaches it.
    active.wait("worker stopped", 30)
    active.wait("standby: cannot reach the database", 30)
    assert set(sessions(db_url, server_ports(active.process.pid))) <= network_cut.ports
    assert network_cut.dropped() > 0
    network_cut.restore()
    active.wait("standby: another worker is active (citesmail on ")
    assert active.log.count("worker started") == 1
    assert f"{REPLAY}: starting" in standby.log
    assert f"{REPLAY}: starting" not in active.log and f"{REPLAY}: resuming" not in active.log
    for worker in (active, standby):
        assert "Traceback" not in worker.stop()
        assert worker.process.returncode == 0
    once_each(server, 5)
