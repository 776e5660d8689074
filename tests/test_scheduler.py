"""Scheduled sends with real `citesmail worker` processes and a real SMTP server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from citesmail.config import load_settings
from citesmail.db import ClickEvent, Contact, OpenEvent, open_database, utcnow
from citesmail.scheduler import purge_measured_events
from citesmail.states import ContactStatus
from tests.cli.test_delivery_commands import smtp_env, with_audience
from tests.conftest import REPLAY, run
from tests.smtp_server import SmtpServer

CITESMAIL = Path(sys.executable).parent / "citesmail"
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as running:
        yield running


# How far ahead a test schedules: far enough that the `schedule` command itself (a render,
# a few seconds on a busy machine) is done before the time comes.
AHEAD = 6.0


def in_seconds(seconds: float) -> str:
    return at(datetime.now(PARIS) + timedelta(seconds=seconds))


def at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def schedule_ahead() -> datetime:
    """Schedule the replay AHEAD seconds from now (whole seconds); returns the time."""
    moment = (datetime.now(PARIS) + timedelta(seconds=AHEAD)).replace(microsecond=0)
    scheduled = run("schedule", REPLAY, "--at", at(moment))
    assert scheduled.exit_code == 0, scheduled.output
    return moment


def sleep_until(moment: datetime) -> None:
    """Wait for a time to pass: what a test of a due time is about."""
    time.sleep(max((moment - datetime.now(PARIS)).total_seconds(), 0))


class Workers:
    """Starts `citesmail worker` processes; stops whatever is left at the end."""

    def __init__(self, workspace: Path, env: dict[str, str]) -> None:
        self.workspace, self.env = workspace, {**os.environ, **env}
        self.processes: list[subprocess.Popen[str]] = []

    def start(self) -> subprocess.Popen[str]:
        process = subprocess.Popen([str(CITESMAIL), "worker"], cwd=self.workspace,
                                   env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[str]) -> str:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        return output

    def kill(self, process: subprocess.Popen[str]) -> None:
        process.kill()
        process.communicate()

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            if process.stdout and not process.stdout.closed:
                process.communicate()


@pytest.fixture
def setup(workspace: Path, server: SmtpServer) -> Iterator[Callable[..., Workers]]:
    made: list[Workers] = []

    def make(grace: str = "1h", recipients: int = 5) -> Workers:
        env = smtp_env(server.port, CITESMAIL_SCHEDULE_MISFIRE_GRACE=f'"{grace}"')
        os.environ.update({k: v for k, v in env.items()})
        with_audience(workspace, recipients)
        workers = Workers(workspace, env)
        made.append(workers)
        return workers

    saved = dict(os.environ)
    yield make
    for workers in made:
        workers.close()
    os.environ.clear()
    os.environ.update(saved)


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> bool:
    """Wait for an event; the time only bounds how long a failing test takes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def delivered(server: SmtpServer, n: int) -> Callable[[], bool]:
    return lambda: sum(server.handler.received.values()) >= n


def test_a_due_send_is_delivered_once_to_everyone(setup: Callable[..., Workers],
                                                  server: SmtpServer) -> None:
    workers = setup()
    scheduled = run("schedule", REPLAY, "--at", in_seconds(AHEAD))
    assert scheduled.exit_code == 0, scheduled.output
    assert "UTC" in scheduled.stdout and "(5 recipients now)" in scheduled.stdout
    pending = run("schedules").stdout
    assert "scheduled" in pending and "segment partenaires-aura (5 now)" in pending
    worker = workers.start()
    assert wait_for(delivered(server, 5))
    time.sleep(0.5)
    output = workers.stop(worker)
    assert worker.returncode == 0, output
    assert set(server.handler.received.values()) == {1} and len(server.handler.received) == 5
    assert "starting, 5 recipients" in output and "done (sent 5)" in output
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\+0[12]:00 INFO ", output, re.M), output
    status = run("status", REPLAY).stdout
    assert "sent 5" in status and "scheduled for" in status
    listed = run("schedules").stdout
    assert " done " in listed and "(5 recipients)" in listed


def test_worker_killed_and_restarted_before_the_time(setup: Callable[..., Workers],
                                                     server: SmtpServer) -> None:
    workers = setup()
    schedule_ahead()
    first = workers.start()
    time.sleep(1.5)
    workers.kill(first)
    second = workers.start()
    assert wait_for(delivered(server, 5))
    time.sleep(0.5)
    workers.stop(second)
    assert set(server.handler.received.values()) == {1} and len(server.handler.received) == 5


def test_no_worker_at_the_time_then_one_within_the_grace(setup: Callable[..., Workers],
                                                         server: SmtpServer) -> None:
    workers = setup(grace="60s")
    sleep_until(schedule_ahead() + timedelta(seconds=1.5))
    assert not server.handler.received
    worker = workers.start()
    assert wait_for(delivered(server, 5))
    workers.stop(worker)
    assert set(server.handler.received.values()) == {1}


def test_outside_the_grace_the_send_is_missed_not_sent(setup: Callable[..., Workers],
                                                       server: SmtpServer) -> None:
    workers = setup(grace="1s")
    sleep_until(schedule_ahead() + timedelta(seconds=2.5))  # past the 1 s of grace
    worker = workers.start()
    assert wait_for(lambda: "missed" in run("schedules").stdout)
    output = workers.stop(worker)
    assert "MISSED" in output
    assert not server.handler.received
    assert "missed" in run("status", REPLAY).stdout
    refused = run("send", REPLAY, "--yes")
    assert refused.exit_code == 1 and "unschedule" in refused.stderr


def test_two_workers_started_together_make_one_send(setup: Callable[..., Workers],
                                                    server: SmtpServer) -> None:
    workers = setup()
    schedule_ahead()
    a, b = workers.start(), workers.start()
    assert wait_for(lambda: a.poll() is not None or b.poll() is not None)
    loser, winner = (a, b) if a.poll() is not None else (b, a)
    assert loser.returncode == 1
    assert "another citesmail worker is running" in loser.communicate()[0]
    assert wait_for(delivered(server, 5))
    time.sleep(0.5)
    workers.stop(winner)
    assert set(server.handler.received.values()) == {1} and len(server.handler.received) == 5


def test_times_in_the_past_or_in_the_dst_gap_are_refused_and_unschedule(
        workspace: Path) -> None:
    with_audience(workspace, 2)
    past = run("schedule", REPLAY, "--at", "2020-01-01 10:00")
    assert past.exit_code == 1 and "is in the past" in past.stderr
    gap = run("schedule", REPLAY, "--at", "2031-03-30 02:30")
    assert gap.exit_code == 1 and "does not exist in Europe/Paris" in gap.stderr
    ambiguous = run("schedule", REPLAY, "--at", "2031-10-26 02:30")
    assert ambiguous.exit_code == 0
    assert "happens twice" in ambiguous.stderr
    assert "2031-10-26 02:30:00 CEST (2031-10-26 00:30:00 UTC)" in ambiguous.stdout
    again = run("schedule", REPLAY, "--at", "2031-01-01 09:00", "--tz", "UTC")
    assert "rescheduled for 2031-01-01 09:00:00 UTC" in again.stdout
    assert "2031-01-01 10:00:00 CET" in run("schedules").stdout
    assert run("unschedule", REPLAY).exit_code == 0
    assert "no scheduled sends" in run("schedules").stderr
    assert run("unschedule", REPLAY).exit_code == 1


def test_the_worker_lock_is_exclusive_and_dies_with_its_holder(db_url: str) -> None:
    from citesmail.config import load_settings
    from citesmail.db import open_database
    from citesmail.errors import CitesmailError
    from citesmail.scheduler import WorkerLock

    settings = load_settings(None, environ={}, overrides={"database": {"url": db_url}})
    first_db, second_db = open_database(db_url), open_database(db_url)
    first = WorkerLock(first_db, settings)
    first.acquire()
    with pytest.raises(CitesmailError, match="another citesmail worker is running"):
        WorkerLock(second_db, settings).acquire()
    first.release()
    second = WorkerLock(second_db, settings)
    second.acquire()
    second.release()
    first_db.close()
    second_db.close()


def test_the_worker_log_says_every_time_in_the_configured_zone_with_its_offset(
        setup: Callable[..., Workers]) -> None:
    workers = setup()
    assert run("schedule", REPLAY, "--at", "2031-01-01 09:00").exit_code == 0
    worker = workers.start()
    assert worker.stdout is not None
    lines = []
    for line in worker.stdout:  # up to the line about the scheduled send
        lines.append(line)
        if "scheduled for" in line:
            break
    workers.stop(worker)
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}[+-]\d\d:\d\d "
    assert all(re.match(stamp, line) for line in lines), lines
    assert lines[-1].rstrip().endswith(f"{REPLAY}: scheduled for 2031-01-01 09:00:00+01:00")


def test_schedule_and_schedules_say_whether_a_worker_runs(setup: Callable[..., Workers]) -> None:
    workers = setup()
    alone = run("schedule", REPLAY, "--at", "2031-01-01 09:00")
    assert alone.exit_code == 0, alone.output
    assert ("note: no citesmail worker is running for this database: start one "
            "(citesmail worker, or citesmail worker --systemd for a service)") in alone.stderr
    assert "no citesmail worker is running" in run("schedules").stderr
    worker = workers.start()
    assert worker.stdout is not None
    for line in worker.stdout:  # the worker holds its lock once it says it started
        if "worker started" in line:
            break
    running = run("schedules")
    assert re.search(r"a citesmail worker is running \(pid \d+\)", running.stderr), running.stderr
    again = run("schedule", REPLAY, "--at", "2031-01-02 09:00")
    assert "a citesmail worker is running" in again.stderr
    workers.stop(worker)
    assert "no citesmail worker is running" in run("schedules").stderr


def test_worker_systemd_prints_a_unit_for_the_workspace(workspace: Path) -> None:
    result = run("worker", "--systemd")
    assert result.exit_code == 0, result.output
    unit = result.stdout
    assert "[Service]" in unit and "[Install]" in unit
    assert f"WorkingDirectory={workspace}" in unit
    assert re.search(rf"^ExecStart=\S*citesmail --config {workspace}/config.toml worker$",
                     unit, re.M), unit
    assert "KillSignal=SIGTERM" in unit and "Restart=on-failure" in unit
    assert f"EnvironmentFile={workspace}/.citesmail/worker.env" in unit
    assert not re.search(r"^Environment=", unit, re.M)  # no secret in the unit itself


def test_the_worker_purges_pending_sign_ups_when_it_starts(setup: Callable[..., Workers],
                                                          workspace: Path) -> None:
    workers = setup(recipients=3)
    db = open_database(load_settings(workspace / "config.toml", environ={}).database_url)
    with db.session() as session:
        session.execute(update(Contact).where(Contact.email.in_(["p0@example.org",
                                                                 "p1@example.org"]))
                        .values(status=ContactStatus.PENDING,
                                updated_at=utcnow() - timedelta(days=8)))
    worker = workers.start()
    assert worker.stdout is not None
    for line in worker.stdout:  # up to the line about the purge
        if "purged" in line:
            break
    workers.stop(worker)
    assert line.rstrip().endswith("2 pending sign-ups purged (unconfirmed for more than "
                                  "7 days)")
    with db.session(write=False) as session:
        assert session.scalars(select(Contact.email)).all() == ["p2@example.org"]
    db.close()


def test_the_worker_purges_clicks_and_opens_past_their_retention(
        setup: Callable[..., Workers], workspace: Path) -> None:
    workers = setup(recipients=1)
    db = open_database(load_settings(workspace / "config.toml", environ={}).database_url)

    def add(days: int) -> None:
        with db.session() as session:
            contact_id = session.scalar(select(Contact.id))
            assert contact_id is not None
            at = utcnow() - timedelta(days=days)
            session.add_all([ClickEvent(contact_id=contact_id, campaign="c", number=1,
                                        automated=False, at=at),
                             OpenEvent(contact_id=contact_id, campaign="c", at=at)])

    def left() -> list[int]:
        with db.session(write=False) as session:
            return [session.scalar(select(func.count()).select_from(model)) or 0
                    for model in (ClickEvent, OpenEvent)]

    add(400)
    add(10)
    worker = workers.start()  # the hourly job also runs when the worker starts
    assert worker.stdout is not None
    for line in worker.stdout:
        if "deleted" in line:
            break
    workers.stop(worker)
    assert line.rstrip().endswith("1 click and 1 open deleted (recorded more than "
                                  "395 days ago)")
    assert left() == [1, 1]
    add(396)  # the job itself, as the scheduler calls it
    purge_measured_events(db, timedelta(days=395))
    assert left() == [1, 1]
    db.close()


def test_the_worker_sends_a_queued_confirmation(setup: Callable[..., Workers],
                                                server: SmtpServer) -> None:
    workers = setup(recipients=1)
    assert run("contacts", "unsubscribe", "p0@example.org").exit_code == 0
    assert run("contacts", "resubscribe", "p0@example.org").exit_code == 0
    worker = workers.start()
    assert wait_for(delivered(server, 1)), "the confirmation did not arrive"
    output = workers.stop(worker)
    assert "confirmation 1: sent" in output
    assert server.handler.received["p0@example.org"] == 1
    assert "status:        unsubscribed" in run("contacts", "show", "p0@example.org").stdout
