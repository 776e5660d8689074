"""citesmail inbox fetch, against a real Dovecot on 127.0.0.1 (tests/imap_server.py),
over TLS and STARTTLS, its certificate from the test's CA."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run
from tests.delivery.test_bounces import CITESMAIL, snapshot, statuses
from tests.delivery.test_transports import Authority
from tests.imap_server import PASSWORD, USER, Dovecot
from tests.inbox.returns import HANDLED, LEFT_ALONE
from tests.inbox.test_import import check_first_run, counts

PROCESSED = "citesmail.processed"  # citesmail/processed, with Dovecot's separator '.'


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority.create(tmp_path, "citesmail test CA")


@pytest.fixture
def dovecot(ca: Authority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[Dovecot]:
    """Dovecot with a certificate of the test CA, which the client trusts."""
    folder = tmp_path / "server"
    folder.mkdir()
    ca.server_context(folder)  # writes localhost.pem and localhost.key
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.path))
    with Dovecot(folder / "localhost.pem", folder / "localhost.key") as server:
        yield server


def inbox_env(env: dict[str, str], server: Dovecot, security: str = "tls") -> dict[str, str]:
    port = server.imaps if security == "tls" else server.imap
    return {**env, "CITESMAIL_INBOX_HOST": "127.0.0.1", "CITESMAIL_INBOX_PORT": str(port),
            "CITESMAIL_INBOX_SECURITY": security, "CITESMAIL_INBOX_USERNAME": USER,
            "CITESMAIL_IMAP_PASSWORD": PASSWORD}


def names(found: list[tuple[bytes, frozenset[str]]], returned: dict[str, bytes]) -> set[str]:
    """Which of the returned messages a folder holds (Dovecot keeps their bytes)."""
    by_content = {data.replace(b"\r\n", b"\n"): name for name, data in returned.items()}
    return {by_content[data.replace(b"\r\n", b"\n")] for data, _ in found}


def test_fetch_acts_files_away_and_leaves_a_persons_mail_unseen(
        sent_env: dict[str, str], returned: dict[str, bytes], db_url: str, ca: Authority,
        dovecot: Dovecot) -> None:
    dovecot.append(ca.path, list(returned.values()))
    env = inbox_env(sent_env, dovecot)
    first = run("inbox", "fetch", env=env)
    assert first.exit_code == 0, first.output
    check_first_run(first.stdout, db_url)
    assert "moved to citesmail/processed: 7" in first.stdout.splitlines()

    inbox, processed = dovecot.contents(ca.path, "INBOX"), dovecot.contents(ca.path, PROCESSED)
    assert names(inbox, returned) == LEFT_ALONE
    assert all("\\Seen" not in flags for _, flags in inbox)  # never read, as far as anyone sees
    assert names(processed, returned) == HANDLED
    assert all("\\Seen" in flags and "\\Deleted" not in flags for _, flags in processed)

    state = snapshot(db_url)
    second = run("inbox", "fetch", env=env)
    assert second.exit_code == 0, second.output
    found = counts(second.stdout)
    assert (found["messages read"], found["other mail, left alone"]) == ("2", "1")
    assert "moved to citesmail/processed: 0" in second.stdout.splitlines()
    assert second.stdout.splitlines()[-1] == "nothing changed"
    assert snapshot(db_url) == state
    assert dovecot.contents(ca.path, "INBOX") == inbox
    assert dovecot.contents(ca.path, PROCESSED) == processed


def test_starttls_and_a_dry_run(sent_env: dict[str, str], returned: dict[str, bytes],
                                db_url: str, ca: Authority, dovecot: Dovecot) -> None:
    dovecot.append(ca.path, [returned["jmrp"], returned["ordinary"]])
    env = inbox_env(sent_env, dovecot, "starttls")
    before = snapshot(db_url)
    dry = run("inbox", "fetch", "--dry-run", env=env)
    assert dry.exit_code == 0, dry.output
    assert counts(dry.stdout)["contacts complained"] == "1"
    assert snapshot(db_url) == before
    assert dovecot.contents(ca.path, PROCESSED) == []
    assert all("\\Seen" not in flags for _, flags in dovecot.contents(ca.path, "INBOX"))

    real = run("inbox", "fetch", env=env)
    assert real.exit_code == 0, real.output
    assert statuses(db_url)["chloe.bernard@example.fr"] == "complained"
    assert names(dovecot.contents(ca.path, "INBOX"), returned) == {"ordinary"}
    assert names(dovecot.contents(ca.path, PROCESSED), returned) == {"jmrp"}


def test_a_certificate_from_another_ca_is_refused_in_one_line(
        sent_env: dict[str, str], returned: dict[str, bytes], db_url: str, ca: Authority,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dovecot: Dovecot) -> None:
    dovecot.append(ca.path, [returned["arf-yahoo"]])
    other = Authority.create(tmp_path, "another CA")
    monkeypatch.setenv("SSL_CERT_FILE", str(other.path))  # the server's CA is not trusted
    before = snapshot(db_url)
    for security in ("tls", "starttls"):
        result = run("inbox", "fetch", env=inbox_env(sent_env, dovecot, security))
        assert result.exit_code == 1
        port = dovecot.imaps if security == "tls" else dovecot.imap
        assert result.stderr.splitlines() == [
            f"error: IMAP server 127.0.0.1:{port}: its certificate could not be verified: "
            "unable to get local issuer certificate — check [inbox] host (a name the "
            "certificate lists); for a private CA, export SSL_CERT_FILE=<its certificate, PEM>"]
    assert snapshot(db_url) == before
    assert names(dovecot.contents(ca.path, "INBOX"), returned) == {"arf-yahoo"}


def test_a_wrong_password_or_none_is_one_line(sent_env: dict[str, str],
                                              dovecot: Dovecot) -> None:
    env = inbox_env(sent_env, dovecot)
    wrong = run("inbox", "fetch", env={**env, "CITESMAIL_IMAP_PASSWORD": "not it"})
    assert wrong.exit_code == 1
    assert wrong.stderr.splitlines() == [
        f"error: IMAP server 127.0.0.1:{dovecot.imaps}: login of 'citesmail' refused "
        "([AUTHENTICATIONFAILED] Authentication failed.) — check [inbox] username and "
        "CITESMAIL_IMAP_PASSWORD"]
    missing = run("inbox", "fetch", env={**env, "CITESMAIL_IMAP_PASSWORD": ""})
    assert missing.stderr.splitlines() == [
        "error: CITESMAIL_IMAP_PASSWORD is not set — export the password of citesmail in "
        "CITESMAIL_IMAP_PASSWORD"]



def test_the_worker_fetches_when_an_inbox_is_configured(
        sent_env: dict[str, str], returned: dict[str, bytes], db_url: str, ca: Authority,
        dovecot: Dovecot, workspace: Path) -> None:
    dovecot.append(ca.path, [returned["mailto"], returned["ordinary"]])
    env = {**os.environ, **inbox_env(sent_env, dovecot), "CITESMAIL_INBOX_POLL_EVERY": '"1h"'}
    worker = subprocess.Popen([str(CITESMAIL), "worker"], cwd=workspace, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in worker.stdout or ()],
                              daemon=True)
    reader.start()
    seen = []
    try:
        while not any("inbox: 2 messages" in line for line in seen):
            seen.append(lines.get(timeout=60))  # the worker's log line is the event
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        reader.join(timeout=60)
        if worker.stdout is not None:
            worker.stdout.close()
    said = next(line for line in seen if "inbox: 2 messages" in line)
    assert said.rstrip().endswith(
        "inbox: 2 messages (1 unsubscribe, 1 other); 1 unsubscribed, 1 moved"), seen
    assert any("inbox: 127.0.0.1 every 1:00:00" in line for line in seen), seen
    assert statuses(db_url)["david.petit@mairie-exemple.fr"] == "unsubscribed"
    assert names(dovecot.contents(ca.path, "INBOX"), returned) == {"ordinary"}
