"""citesmail send and status as a user runs them, including being killed mid-send."""

from __future__ import annotations

import csv
import email
import io
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from citesmail.tokens import DEVELOPMENT_SECRET
from tests.conftest import NEWSLETTER, REPLAY, SECRET, run
from tests.smtp_server import SmtpServer

CITESMAIL = Path(sys.executable).parent / "citesmail"


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as running:
        yield running


def smtp_env(port: int, **extra: str) -> dict[str, str]:
    return {"CITESMAIL_DELIVERY_TRANSPORT": "smtp", "CITESMAIL_SMTP_HOST": "127.0.0.1",
            "CITESMAIL_SMTP_PORT": str(port), "CITESMAIL_SMTP_SECURITY": "none",
            "CITESMAIL_SECRET": SECRET, "CITESMAIL_DELIVERY_RETRY_DELAYS": "[1]", **extra}


def with_audience(workspace: Path, n: int) -> list[str]:
    addresses = [f"p{i}@example.org" for i in range(n)]
    (workspace / "c.csv").write_text("email\n" + "\n".join(addresses) + "\n", encoding="utf-8")
    assert run("lists", "add", "aura").exit_code == 0
    assert run("contacts", "import", "c.csv", "--list", "aura").exit_code == 0
    assert run("segments", "add", "partenaires-aura", "--list", "aura").exit_code == 0
    return addresses


def test_send_to_the_outbox_then_status(workspace: Path) -> None:
    with_audience(workspace, 3)
    dry = run("send", REPLAY, "--dry-run")
    assert dry.exit_code == 0 and "3 messages built" in dry.stdout
    assert (f"dry run of '{REPLAY}' to segment partenaires-aura via the outbox "
            f"{workspace / 'outbox'}") in dry.stdout
    assert not (workspace / "outbox").exists()
    refused = run("send", REPLAY)  # no terminal to answer the question
    assert refused.exit_code == 1 and "add --yes" in refused.stderr
    sent = run("send", REPLAY, "--yes")
    assert sent.exit_code == 0, sent.output
    assert sent.stdout.strip() == "sent 3"
    assert len(list((workspace / "outbox" / "new").iterdir())) == 3
    shown = run("status", REPLAY)
    assert "sent 3" in shown.stdout and ": done" in shown.stdout
    again = run("send", REPLAY, "--yes")
    assert again.exit_code == 0 and again.stdout == ""  # this run sent nothing
    said = again.stderr.splitlines()[-1]
    assert said.startswith(f"'{REPLAY}' was sent already (sent 3, finished ")
    assert said.endswith("): nothing more to send")
    assert run("status", REPLAY).stdout == shown.stdout  # not even the finish time moved
    assert len(list((workspace / "outbox" / "new").iterdir())) == 3
    other = run("send", REPLAY, "--yes", "--segment", "nope")
    assert other.exit_code == 0 and "was sent already" in other.stderr


def test_a_finished_send_sends_its_unknown_recipients_only_when_asked(
        workspace: Path, server: SmtpServer) -> None:
    addresses = with_audience(workspace, 2)
    server.handler.drop_after_data[addresses[0]] = 1  # the server has it, says nothing
    env = smtp_env(server.port)
    assert run("send", REPLAY, "--yes", env=env).stdout.strip() == "sent 1, unknown 1"
    again = run("send", REPLAY, "--yes", env=env)
    assert again.stdout == "" and "sent already (sent 1, unknown 1, finished" in again.stderr
    asked = run("send", REPLAY, "--yes", "--resend-unknown", env=env)
    assert asked.exit_code == 0, asked.output
    assert asked.stdout.strip() == "sent 2" and "1 unknown recipient(s) queued" in asked.stderr
    assert server.handler.received == {addresses[0]: 2, addresses[1]: 1}
    assert ": done" in run("status", REPLAY).stdout


def test_a_send_under_way_resumes_even_if_its_segment_was_removed(workspace: Path,
                                                                   server: SmtpServer) -> None:
    addresses = with_audience(workspace, 3)
    server.handler.at_rcpt[addresses[1]] = [451]
    env = smtp_env(server.port, CITESMAIL_DELIVERY_RETRY_DELAYS="[900]")
    assert run("send", REPLAY, "--yes", env=env).stdout.strip() == "sent 2, deferred 1"
    other = run("send", REPLAY, "--yes", "--segment", "nope", env=env)
    assert other.exit_code == 1
    assert "started for segment partenaires-aura" in other.stderr
    assert run("segments", "remove", "partenaires-aura").exit_code == 0
    resumed = run("send", REPLAY, "--yes", env=env)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming the send" in resumed.stderr and "next retry at" in resumed.stderr


def test_test_send_logs_nothing(workspace: Path, server: SmtpServer) -> None:
    with_audience(workspace, 2)
    env = smtp_env(server.port)
    result = run("send", REPLAY, "--test", "moi@example.org", env=env)
    assert result.exit_code == 0, result.output
    assert server.handler.received == {"moi@example.org": 1}
    message = email.message_from_bytes(server.handler.messages[0], policy=policy.default)
    assert message["Subject"].startswith("[TEST] Replay")
    assert "nothing sent yet" in run("status", env=env).stderr


def test_smtp_without_a_secret_is_refused(workspace: Path, server: SmtpServer) -> None:
    with_audience(workspace, 1)
    env = smtp_env(server.port, CITESMAIL_SECRET="")
    result = run("send", REPLAY, "--yes", env=env)
    assert result.exit_code == 1 and "CITESMAIL_SECRET" in result.stderr
    assert not server.handler.received


@pytest.mark.parametrize("secret", ["x", "a" * 31, DEVELOPMENT_SECRET])
def test_smtp_with_a_short_or_published_secret_is_refused(workspace: Path, server: SmtpServer,
                                                           secret: str) -> None:
    with_audience(workspace, 1)
    env = smtp_env(server.port, CITESMAIL_SECRET=secret)
    for command in (["send", REPLAY, "--yes"], ["send", REPLAY, "--test", "moi@example.org"],
                    ["schedule", REPLAY, "--at", "2099-01-05 10:00"]):
        result = run(*command, env=env)
        assert result.exit_code == 1, (command, result.output)
        [line] = result.stderr.splitlines()
        assert "CITESMAIL_SECRET" in line and "`citesmail secret`" in line
    worker = subprocess.run([str(CITESMAIL), "worker"], cwd=workspace, capture_output=True,
                            text=True, env={**os.environ, **env}, timeout=60)
    assert worker.returncode == 1 and "`citesmail secret`" in worker.stderr
    assert not server.handler.received
    assert "no scheduled sends" in run("schedules").stderr


def test_send_to_the_outbox_without_a_secret_says_so_once(workspace: Path) -> None:
    with_audience(workspace, 2)
    sent = run("send", REPLAY, "--yes")
    assert sent.exit_code == 0
    assert sent.stderr.count("CITESMAIL_SECRET is not set") == 1
    tested = run("send", REPLAY, "--test", "moi@example.org")
    assert tested.stderr.count("CITESMAIL_SECRET is not set") == 1
    signed = run("send", REPLAY, "--test", "moi@example.org", env={"CITESMAIL_SECRET": SECRET})
    assert "CITESMAIL_SECRET" not in signed.stderr


def test_no_segment_is_an_error(workspace: Path) -> None:
    (workspace / "campaigns" / "x.md").write_text(
        (workspace / "campaigns" / f"{REPLAY}.md").read_text(encoding="utf-8")
        .replace('audience = "partenaires-aura"\n', ""), encoding="utf-8")
    result = run("send", "x", "--yes")
    assert result.exit_code == 1 and "no segment to send to" in result.stderr


@pytest.mark.parametrize("pipelining", [False, True])
def test_killed_at_random_moments_nobody_is_mailed_twice(workspace: Path, server: SmtpServer,
                                                         pipelining: bool) -> None:
    """SIGKILL a real `citesmail send` at random points of its work (after a random number
    of messages counted at the server), restart until it is done. With PIPELINING, each
    connection writes its next envelope with the message before."""
    server.handler.pipelining = pipelining
    addresses = with_audience(workspace, 3000)
    env = {**os.environ, **smtp_env(server.port, CITESMAIL_DELIVERY_CONNECTIONS="4")}
    command = [str(CITESMAIL), "send", REPLAY, "--yes"]
    rng = random.Random(20231)
    kills = 0
    while kills < 10:  # at most 10 x 200 messages: the send cannot finish before
        process = subprocess.Popen(command, cwd=workspace, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = sum(server.handler.received.values()) + rng.randint(1, 200)
        while sum(server.handler.received.values()) < target and process.poll() is None:
            time.sleep(0.001)
        assert process.poll() is None, "the send stopped before it was killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    final = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True,
                           timeout=300)
    assert final.returncode == 0, final.stderr
    states = dict(line.split(" ") for line in final.stdout.strip().split(", "))
    unknown = int(states.get("unknown", 0))
    received = server.handler.received
    assert max(received.values()) == 1  # nobody twice
    assert int(states["sent"]) + unknown == len(addresses)
    assert len(received) >= len(addresses) - unknown  # nobody lost but the unknown
    assert unknown <= kills * 4


def test_contacts_show_lists_sends_and_erasure_blanks_the_log(workspace: Path) -> None:
    addresses = with_audience(workspace, 2)
    assert run("send", REPLAY, "--yes").exit_code == 0
    shown = run("contacts", "show", addresses[0]).stdout
    assert f"send:          {REPLAY}: sent at " in shown
    assert run("contacts", "delete", "--yes", addresses[0]).exit_code == 0
    status = run("status", REPLAY).stdout
    assert "sent 2" in status  # the log still counts the erased contact's message
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{workspace}/citesmail.db")
    with engine.connect() as connection:
        emails = set(connection.execute(text("SELECT email FROM deliveries")).scalars())
    engine.dispose()
    assert emails == {"", addresses[1]}


def send_with_one_451(workspace: Path, server: SmtpServer, delays: str) -> Any:
    """`send` to two recipients, the first answered 451 once; retries after `delays`."""
    addresses = with_audience(workspace, 2)
    server.handler.at_rcpt[addresses[0]] = [451]
    env = smtp_env(server.port, CITESMAIL_DELIVERY_RETRY_DELAYS=delays)
    return run("send", REPLAY, "--yes", env=env)


def test_a_short_retry_delay_is_waited_out_saying_so(workspace: Path,
                                                   server: SmtpServer) -> None:
    result = send_with_one_451(workspace, server, "[3]")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "sent 2"
    assert re.search(r"^waiting [23] s for the next retry of 1 deferred message\(s\)$",
                     result.stderr, re.M), result.stderr


def test_long_retry_delay_ends_the_command_saying_when(workspace: Path,
                                                      server: SmtpServer) -> None:
    result = send_with_one_451(workspace, server, "[900]")
    assert result.exit_code == 0
    assert result.stdout.strip() == "sent 1, deferred 1"
    assert "next retry at" in result.stderr


def test_hourly_cap_and_rate_limit(workspace: Path, server: SmtpServer) -> None:
    with_audience(workspace, 5)
    env = smtp_env(server.port, CITESMAIL_DELIVERY_HOURLY_CAP="3")
    capped = run("send", REPLAY, "--yes", env=env)
    assert capped.stdout.strip() == "queued 2, sent 3"
    assert "hourly cap reached" in capped.stderr
    assert sum(server.handler.received.values()) == 3
    copy = workspace / "campaigns" / "au-rythme.md"
    copy.write_text((workspace / "campaigns" / f"{REPLAY}.md").read_text(encoding="utf-8"),
                    encoding="utf-8")
    env = smtp_env(server.port, CITESMAIL_DELIVERY_RATE_PER_SECOND="4",
                   CITESMAIL_DELIVERY_HOURLY_CAP="0")
    started = time.monotonic()
    assert run("send", "au-rythme", "--yes", env=env).stdout.strip() == "sent 5"
    assert time.monotonic() - started >= 0.95  # five at 4 per second: 1 s at least


def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(workspace: Path,
                                                          server: SmtpServer) -> None:
    with_audience(workspace, 40)
    server.handler.delay = 0.05
    env = {**os.environ, **smtp_env(server.port, CITESMAIL_DELIVERY_CONNECTIONS="2")}
    command = [str(CITESMAIL), "send", REPLAY, "--yes"]
    process = subprocess.Popen(command, cwd=workspace, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not server.handler.received and time.monotonic() < deadline:
        time.sleep(0.05)  # sending has begun
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "stopped: run the same command to resume" in err
    assert "sending" not in out and "unknown" not in out  # the messages in hand finished
    server.handler.delay = 0
    final = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True,
                           timeout=60)
    assert final.stdout.strip() == "sent 40"
    assert set(server.handler.received.values()) == {1}


def test_a_second_process_cannot_send_the_same_campaign(
        workspace: Path, server: SmtpServer, db_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two real `citesmail send` of one campaign on one database (SQLite or PostgreSQL):
    the second stops at once, the first finishes alone, everybody gets one message."""
    monkeypatch.setenv("CITESMAIL_DATABASE_URL", f'"{db_url}"')
    addresses = with_audience(workspace, 40)
    server.handler.delay = 0.2  # 8 s for all: the first run is still busy when asked
    env = {**os.environ, **smtp_env(server.port, CITESMAIL_DELIVERY_CONNECTIONS="2")}
    command = [str(CITESMAIL), "send", REPLAY, "--yes"]
    first = subprocess.Popen(command, cwd=workspace, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not server.handler.received and time.monotonic() < deadline:
            time.sleep(0.05)  # the first run holds the send and is sending
        assert server.handler.received, "the first send did not begin"
        second = subprocess.run(command, cwd=workspace, env=env, capture_output=True,
                                text=True, timeout=60)
        overlapped = first.poll() is None
        server.handler.delay = 0
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert second.returncode == 1, second.stderr
    holder = f"pid {first.pid}" if db_url.startswith("sqlite") else \
        f"citesmail on {socket.gethostname()} (pid {first.pid})"
    assert f"error: this campaign is being sent by another process ({holder})" \
        in second.stderr
    assert second.stdout == ""
    assert overlapped, "the first send ended before the second was tried"
    assert first.returncode == 0, err
    assert out.strip() == "sent 40"
    assert server.handler.received == dict.fromkeys(addresses, 1)


def test_dry_run_lists_the_recipients_and_says_who_is_left_out(workspace: Path) -> None:
    addresses = with_audience(workspace, 5)
    assert run("contacts", "unsubscribe", addresses[0], addresses[1]).exit_code == 0
    engine = create_engine(f"sqlite:///{workspace / 'citesmail.db'}")
    with engine.begin() as connection:  # a bounce recorded earlier
        connection.execute(text("UPDATE contacts SET status = 'bounced' WHERE email = :e"),
                           {"e": addresses[2]})
    engine.dispose()
    dry = run("send", REPLAY, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "2 messages built" in dry.stdout
    assert "left out: 2 unsubscribed, 1 bounced" in dry.stdout
    listed = run("send", REPLAY, "--dry-run", "--list-recipients")
    assert listed.exit_code == 0, listed.output
    rows = list(csv.reader(io.StringIO(listed.stdout)))
    assert rows == [["email", "first_name", "last_name", "organization"],
                    [addresses[3], "", "", ""], [addresses[4], "", "", ""]]
    assert "2 messages built" in listed.stderr and "left out: 2 unsubscribed" in listed.stderr
    alone = run("send", REPLAY, "--list-recipients")
    assert alone.exit_code == 2 and "--list-recipients goes with --dry-run" in alone.stderr


def test_status_lists_the_recipients_in_a_state_with_the_last_answer(
        workspace: Path, server: SmtpServer) -> None:
    addresses = with_audience(workspace, 3)
    server.handler.at_rcpt[addresses[1]] = [550]
    env = smtp_env(server.port)
    assert run("send", REPLAY, "--yes", env=env).stdout.strip() == "sent 2, failed 1"
    failed = run("status", REPLAY, "--state", "failed")
    assert failed.exit_code == 0, failed.output
    assert failed.stdout.splitlines() == [
        f"{addresses[1]}: 550 scripted answer for {addresses[1]}"]
    sent = run("status", REPLAY, "--state", "sent", "--format", "csv")
    rows = list(csv.reader(io.StringIO(sent.stdout)))
    assert rows[0] == ["email", "state", "last_code", "last_answer", "updated_at"]
    assert [row[:3] for row in rows[1:]] == [[addresses[0], "sent", "250"],
                                             [addresses[2], "sent", "250"]]
    assert run("status", REPLAY, "--state", "deferred").stdout == ""
    alone = run("status", "--state", "sent")
    assert alone.exit_code == 2 and "--state needs a CAMPAIGN" in alone.stderr
    wrong = run("status", REPLAY, "--state", "lost")
    assert wrong.exit_code == 2 and "'lost' is not one of" in wrong.stderr


def test_a_send_over_smtp_says_once_that_its_return_path_does_not_align(
        workspace: Path, server: SmtpServer) -> None:
    with_audience(workspace, 3)
    unaligned = {"CITESMAIL_DELIVERY_RETURN_PATH": "b+{token}@relais.example.net"}
    sent = run("send", REPLAY, "--yes", env=smtp_env(server.port, **unaligned))
    assert sent.exit_code == 0, sent.output
    assert sent.stderr.count("warning: [delivery] return_path domain relais.example.net "
                             "does not align with the From domain example.org") == 1
    assert "DKIM" not in sent.stderr  # off: check says so; the relay may sign
    outbox = run("send", NEWSLETTER, "--segment", "partenaires-aura", "--yes",
                 env={"CITESMAIL_SECRET": SECRET, **unaligned})
    assert outbox.exit_code == 0, outbox.output
    assert "align" not in outbox.stderr  # nothing leaves the machine
