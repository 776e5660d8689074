"""One send drained by several `citesmail send --join` processes on PostgreSQL, killed
with SIGKILL at random and started again: nobody lost, nobody mailed twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from citesmail.db import Delivery, open_database
from tests.cli.test_delivery_commands import smtp_env, with_audience
from tests.conftest import REPLAY, run
from tests.smtp_server import SmtpServer
from tests.test_scheduler import CITESMAIL, delivered, wait_for

RECIPIENTS = 600
ON_POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as running:
        yield running


def joiner(workspace: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([str(CITESMAIL), "send", REPLAY, "--yes", "--join"],
                            cwd=workspace, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@ON_POSTGRESQL
def test_runs_killed_at_random_and_restarted_mail_everyone_once(
        workspace: Path, db_url: str, server: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = smtp_env(server.port, CITESMAIL_DATABASE_URL=f'"{db_url}"',
                   CITESMAIL_DELIVERY_RATE_PER_SECOND="60",
                   CITESMAIL_DELIVERY_CONNECTIONS="2")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with_audience(workspace, RECIPIENTS)
    environ = dict(os.environ)
    chance = random.Random(os.environ.get("PYTEST_SEED", "19"))
    first = joiner(workspace, environ)
    assert wait_for(delivered(server, 1))  # the send exists: the others join it
    runs = [first, joiner(workspace, environ), joiner(workspace, environ)]
    db = open_database(db_url)

    def runs_seen() -> int:
        with db.session(write=False) as session:
            return session.scalar(select(func.count(Delivery.run_id.distinct()))) or 0

    assert wait_for(lambda: runs_seen() >= 3), "the others never joined"
    kills = 0
    for step in range(1, 5):  # a kill, a restart, at four points of the send
        assert wait_for(delivered(server, step * RECIPIENTS // 6))
        victim = chance.choice([r for r in runs if r.poll() is None] or runs)
        victim.send_signal(signal.SIGKILL)
        victim.communicate()
        kills += victim.returncode == -signal.SIGKILL
        runs.remove(victim)
        runs.append(joiner(workspace, environ))
    outputs = [process.communicate(timeout=300)[0] for process in runs]
    assert all(process.returncode == 0 for process in runs), outputs
    assert kills >= 3, "the send ended before the kills"
    last = run("send", REPLAY, "--yes")  # anything left (nothing, when all went well)
    assert last.exit_code == 0, last.output

    received = server.handler.received
    assert max(received.values()) == 1, "someone was mailed twice"
    with db.session(write=False) as session:
        states = dict(session.execute(select(Delivery.state, func.count())
                                      .group_by(Delivery.state)).all())
        unknown = set(session.scalars(select(Delivery.email)
                                      .where(Delivery.state == "unknown")))
        runs_that_sent = session.scalar(select(func.count(Delivery.run_id.distinct()))
                                        .where(Delivery.state == "sent")) or 0
    db.close()
    # A killed run's journal settles its rows: only a message on the wire when it died
    # (one per connection) may be unknown, and it was never sent twice.
    assert set(received) | unknown == {f"p{i}@example.org" for i in range(RECIPIENTS)}
    assert len(unknown) <= 2 * kills and states.get("sending", 0) == 0, states
    assert runs_that_sent >= 4, ("the runs did not share the send", outputs)
    assert list((workspace / ".citesmail").glob("*.journal")) == []


def test_join_needs_postgresql(workspace: Path) -> None:
    with_audience(workspace, 1)
    refused = run("send", REPLAY, "--yes", "--join")
    assert refused.exit_code == 1
    assert "only PostgreSQL lets several processes drain one send" in refused.stderr
    assert run("status", REPLAY).exit_code == 1  # nothing was started
