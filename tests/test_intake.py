"""Unsubscribes through `citesmail serve` while SQLite is locked for longer than the busy
timeout: every one answered 2xx only once durable (the intake), applied when the lock is
free, and never mailed by a send meanwhile."""

from __future__ import annotations

import email
import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from email import policy
from html import unescape
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from citesmail.config import load_settings
from citesmail.db import Contact, Database, open_database
from citesmail.errors import CitesmailError
from citesmail.intake import append, apply_pending, intake_path, parse, pending_unsubscribes
from citesmail.tokens import make_token
from citesmail.web import applier as applier_module
from citesmail.web.applier import Applier
from citesmail.web.public import create_public_app
from tests.cli.test_delivery_commands import with_audience
from tests.conftest import REPLAY, run
from tests.smtp_server import free_port

CITESMAIL = Path(sys.executable).parent / "citesmail"
SECRET = "intake-secret-long-enough-for-serve-0123"
ONE_CLICK = {"content": b"List-Unsubscribe=One-Click",
             "headers": {"content-type": "application/x-www-form-urlencoded"}}


def ids_by_address(workspace: Path) -> dict[str, int]:
    with sqlite3.connect(workspace / "citesmail.db") as connection:
        return dict(connection.execute("SELECT email, id FROM contacts"))


def unsubscribed(workspace: Path) -> set[int]:
    with sqlite3.connect(workspace / "citesmail.db") as connection:
        return {i for (i,) in connection.execute(
            "SELECT id FROM contacts WHERE status = 'unsubscribed'")}


def mailed(workspace: Path) -> list[str]:
    new = workspace / "outbox" / "new"
    return sorted(email.message_from_bytes(path.read_bytes(), policy=policy.default)["To"]
                  .addresses[0].addr_spec for path in new.iterdir()) if new.exists() else []


@contextmanager
def write_locked(workspace: Path) -> Iterator[sqlite3.Connection]:
    """Holds SQLite's write lock (as an import does) until the block ends."""
    connection = sqlite3.connect(workspace / "citesmail.db", isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    finally:
        connection.execute("ROLLBACK")
        connection.close()


def wait_until(condition: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        time.sleep(0.02)


class Serve:
    """`citesmail serve` in its own process, its log in a file."""

    def __init__(self, workspace: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = workspace / f"serve-{self.port}.log"
        env = {**os.environ, "CITESMAIL_SECRET": SECRET,
               "CITESMAIL_DATABASE_BUSY_TIMEOUT": "1s"}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(CITESMAIL), "serve", "--port", str(self.port)], cwd=workspace,
                env=env, stdout=subprocess.DEVNULL, stderr=log)
        self.wait_for("Uvicorn running on", 30)

    def said(self, text: str) -> bool:
        return text in self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, text: str, seconds: float) -> None:
        wait_until(lambda: self.said(text) or self.process.poll() is not None, seconds,
                   f"serve saying {text!r}")
        assert self.said(text), self.log.read_text()

    def url(self, contact_id: int) -> str:
        return f"{self.base}/u/{make_token(SECRET, contact_id, REPLAY)}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)
        self.process.wait(timeout=30)


@pytest.fixture
def serve_in(workspace: Path) -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.stop(signal.SIGKILL)


def start_serve(workspace: Path, started: list[Serve]) -> Serve:
    server = Serve(workspace)
    started.append(server)
    return server


def test_unsubscribes_while_the_database_is_locked_are_answered_applied_and_not_mailed(
        workspace: Path, serve_in: list[Serve]) -> None:
    addresses = with_audience(workspace, 410)
    ids = ids_by_address(workspace)
    leaving = [ids[a] for a in addresses[:400]]
    server = start_serve(workspace, serve_in)
    with write_locked(workspace) as held, httpx.Client(limits=httpx.Limits(
            max_connections=20), timeout=60) as client:
        with ThreadPoolExecutor(20) as clients:
            answers = list(clients.map(
                lambda i: client.post(server.url(i), **ONE_CLICK).status_code, leaving))
        assert sorted(set(answers)) == [200], answers
        # The server tried the database and found it locked past its busy timeout (1 s).
        server.wait_for("requests are kept in", 30)
        assert held.execute("SELECT count(*) FROM contacts WHERE status = 'unsubscribed'"
                            ).fetchone() == (0,)
        send = subprocess.Popen(  # it waits for the lock (its own busy timeout is long)
            [str(CITESMAIL), "send", REPLAY, "--yes"], cwd=workspace,
            env={**os.environ, "CITESMAIL_DATABASE_BUSY_TIMEOUT": "60s"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    released = time.monotonic()
    wait_until(lambda: unsubscribed(workspace) >= set(leaving), 5, "all 400 applied")
    assert time.monotonic() - released < 5
    err = send.communicate(timeout=120)[1]
    assert send.returncode == 0, err
    assert mailed(workspace) == sorted(addresses[400:])  # none of the 400
    assert unsubscribed(workspace) == set(leaving)


def test_a_full_disk_answers_503_and_records_nothing(workspace: Path) -> None:
    [address] = with_audience(workspace, 1)
    contact_id = ids_by_address(workspace)[address]
    intake = workspace / "citesmail.db-intake"
    intake.symlink_to("/dev/full")  # every write fails with ENOSPC, as on a full disk
    settings = load_settings(workspace / "config.toml", environ={})
    db = open_database(settings.database_url)
    try:
        with TestClient(create_public_app(settings, db)) as client:
            token = make_token(settings.secret or "citesmail-development-secret-not-for-"
                               "real-sends", contact_id, REPLAY)
            full = client.post(f"/u/{token}", **ONE_CLICK)
            assert full.status_code == 503 and full.headers["retry-after"] == "60"
            assert "Réessayez" in full.text
            assert unsubscribed(workspace) == set()
            intake.unlink()  # space again: the person's retry goes through
            again = client.post(f"/u/{token}", **ONE_CLICK)
            assert again.status_code == 200 and "C'est fait" in unescape(again.text)
            assert unsubscribed(workspace) == {contact_id}
    finally:
        db.close()


def test_a_crash_between_intake_and_database_loses_nothing(
        workspace: Path, serve_in: list[Serve]) -> None:
    addresses = with_audience(workspace, 4)
    ids = [ids_by_address(workspace)[a] for a in addresses]
    for leaving, then in ((ids[0], "serve"), (ids[1], "send")):
        server = start_serve(workspace, serve_in)
        with write_locked(workspace) as held:
            assert httpx.post(server.url(leaving), **ONE_CLICK).status_code == 200
            server.stop(signal.SIGKILL)
            assert held.execute("SELECT status FROM contacts WHERE id = ?",
                                (leaving,)).fetchone() == ("active",)  # only the intake has it
            if then == "serve":  # the next one starts, though the database is locked
                start_serve(workspace, serve_in).wait_for("requests are kept in", 30)
        if then == "serve":  # and applies it once the lock is free
            wait_until(lambda: leaving in unsubscribed(workspace), 5,  # noqa: B023
                       "applied by the next serve")
        else:  # a send applies it before it claims anyone
            assert leaving not in unsubscribed(workspace)  # only the intake has it
            sent = run("send", REPLAY, "--yes")
            assert sent.exit_code == 0 and sent.stdout.strip() == "sent 2", sent.output
    assert mailed(workspace) == sorted(addresses[2:])
    assert unsubscribed(workspace) == set(ids[:2])


def test_a_send_skips_pending_unsubscribes_while_another_process_applies(
        workspace: Path) -> None:
    addresses = with_audience(workspace, 3)
    ids = [ids_by_address(workspace)[a] for a in addresses]
    settings = load_settings(workspace / "config.toml", environ={})
    db = open_database(settings.database_url)
    intake = intake_path(db, workspace)
    try:
        append(intake, ids[0])
        append(intake, ids[1])
        # Another process (a serve) is applying: the send cannot, and must not wait.
        lock = os.open(f"{intake}.lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            sent = run("send", REPLAY, "--yes")
        finally:
            os.close(lock)
        assert sent.exit_code == 0 and sent.stdout.strip() == "sent 1, skipped 2", sent.output
        assert mailed(workspace) == [addresses[2]]
        assert unsubscribed(workspace) == set()
        assert apply_pending(db, intake) == 2
        assert unsubscribed(workspace) == set(ids[:2])
        assert intake.read_bytes() == b"" and pending_unsubscribes(intake) == frozenset()
    finally:
        db.close()


def add_contacts(db: Database, statuses: list[str]) -> list[int]:
    with db.session() as session:
        contacts = [Contact(email=f"c{i}@example.org", email_key=f"c{i}@example.org",
                            domain="example.org", status=status)
                    for i, status in enumerate(statuses)]
        session.add_all(contacts)
        session.flush()
        return [c.id for c in contacts]


def statuses(db: Database) -> list[str]:
    with db.session(write=False) as session:
        return list(session.scalars(select(Contact.status).order_by(Contact.id)))


def test_applying_is_idempotent_and_keeps_lines_until_committed(db: Database,
                                                                tmp_path: Path) -> None:
    ids = add_contacts(db, ["active", "bounced", "active"])
    intake = intake_path(db, tmp_path)
    for contact_id in (ids[0], ids[1], ids[0]):
        append(intake, contact_id)
    if db.engine.dialect.name == "sqlite":  # a failed apply leaves every line
        quick = open_database(str(db.engine.url), busy_timeout=timedelta(milliseconds=50))
        holder = sqlite3.connect(str(db.engine.url.database), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        before = intake.read_bytes()
        try:
            with pytest.raises(CitesmailError, match="locked"):
                apply_pending(quick, intake)
        finally:
            quick.close()
            holder.execute("ROLLBACK")
            holder.close()
        assert intake.read_bytes() == before
    assert apply_pending(db, intake) == 3
    assert statuses(db) == ["unsubscribed", "bounced", "active"]  # only active changes
    assert intake.read_bytes() == b""
    assert apply_pending(db, intake) == 0


def test_torn_lines_are_left_out_and_later_lines_kept(tmp_path: Path) -> None:
    intake = tmp_path / "citesmail.db-intake"
    append(intake, 7)
    whole = intake.read_bytes()
    intake.write_bytes(whole + whole[: len(whole) // 2])  # a write the disk cut short
    append(intake, 8)
    assert [e.contact_id for e in parse(intake.read_bytes())] == [7, 8]
    assert pending_unsubscribes(intake) == frozenset({7, 8})


def test_the_applier_outlives_an_unforeseen_error(db: Database, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """An error that is not a CitesmailError (a damaged database, a pool exhausted) is
    said in one line and tried again; it used to end the thread, and with it every
    unsubscribe's application until serve restarted."""
    [contact] = add_contacts(db, ["active"])
    intake = intake_path(db, tmp_path)
    failures = [RuntimeError("pool exhausted")]
    real = applier_module.apply_pending

    def flaky(*args: object, **kwargs: object) -> int | None:
        if failures:
            raise failures.pop()
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(applier_module, "apply_pending", flaky)
    said: list[str] = []
    applier = Applier(db, intake, said.append)
    applier.start()
    try:
        append(intake, contact)
        applier.wait_applied(applier.appended_one())
        wait_until(lambda: statuses(db) == ["unsubscribed"], 5, "the unsubscribe applied")
    finally:
        applier.close()
    assert said[0].startswith("intake: RuntimeError: pool exhausted")
