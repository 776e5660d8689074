"""The public app: one-click unsubscribe (RFC 8058) and the web view, in-process and for
real behind `citesmail serve`."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from email import policy
from html import unescape
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from citesmail.config import load_settings
from citesmail.db import open_database
from citesmail.dberrors import DatabaseBusy
from citesmail.delivery.lookup import Lookup
from citesmail.tokens import DEVELOPMENT_SECRET, make_token
from citesmail.web.public import create_public_app
from tests.cli.test_delivery_commands import with_audience
from tests.conftest import REPLAY, SECRET, run
from tests.smtp_server import free_port

CITESMAIL = Path(sys.executable).parent / "citesmail"


def sent_messages(workspace: Path) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for path in sorted((workspace / "outbox" / "new").iterdir())]


def unsubscribe_url(message: email.message.EmailMessage) -> str:
    return str(message["List-Unsubscribe"]).split(",")[0].strip()[1:-1]


@pytest.fixture
def client(workspace: Path) -> Iterator[tuple[TestClient, list[email.message.EmailMessage]]]:
    with_audience(workspace, 3)
    assert run("send", REPLAY, "--yes").exit_code == 0
    settings = load_settings(workspace / "config.toml", environ={})
    db = open_database(settings.database_url)
    with TestClient(create_public_app(settings, db)) as test_client:
        yield test_client, sent_messages(workspace)
    db.close()


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def status_of(address: str) -> str:
    shown = run("contacts", "show", address).stdout
    return next(line.split()[1] for line in shown.splitlines() if line.startswith("status:"))


def test_confirmation_page_then_one_click(client: tuple[TestClient, list]) -> None:
    test_client, messages = client
    message = messages[0]
    address = message["To"].addresses[0].addr_spec
    url = path_of(unsubscribe_url(message))
    page = test_client.get(url)
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text and "Me désabonner" in page.text
    assert address in page.text
    for header, value in (("x-content-type-options", "nosniff"),
                          ("referrer-policy", "no-referrer")):
        assert page.headers[header] == value
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert status_of(address) == "active"  # looking does not unsubscribe
    done = test_client.post(url, content=b"List-Unsubscribe=One-Click",
                            headers={"content-type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200 and "C'est fait" in unescape(done.text)
    assert status_of(address) == "unsubscribed"
    again = test_client.post(url, data={"confirm": "1"})
    assert again.status_code == 200  # idempotent
    crlf = test_client.post(url, content=b"List-Unsubscribe=One-Click\r\n")
    assert crlf.status_code == 200
    slash = test_client.post(url + "/", content=b"List-Unsubscribe=One-Click",
                             follow_redirects=False)
    assert slash.status_code == 404  # never a redirect (RFC 8058)
    assert status_of(address) == "unsubscribed"


def test_tampered_or_unknown_tokens_change_nothing(client: tuple[TestClient, list]) -> None:
    test_client, messages = client
    url = path_of(unsubscribe_url(messages[1]))
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    response = test_client.post(tampered, content=b"List-Unsubscribe=One-Click")
    assert response.status_code == 400
    assert messages[1]["To"].addresses[0].addr_spec not in response.text
    unknown = make_token("citesmail-development-secret-not-for-real-sends", 999, REPLAY)
    assert test_client.post(f"/u/{unknown}", content=b"List-Unsubscribe=One-Click"
                            ).status_code == 404
    assert all(status_of(m["To"].addresses[0].addr_spec) == "active" for m in messages)
    assert test_client.get("/").status_code == 404
    big = test_client.post(url, content=b"x" * 20_000)
    assert big.status_code == 413


def test_web_view_is_the_message_as_received(client: tuple[TestClient, list]) -> None:
    test_client, messages = client
    message = messages[2]
    web = test_client.get(path_of(unsubscribe_url(message).replace("/u/", "/v/")))
    assert web.status_code == 200
    assert web.text == message.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert "@@cm" not in web.text


def test_web_view_keeps_the_names_as_sent_and_serves_others_as_they_are(
        workspace: Path) -> None:
    (workspace / "c.csv").write_text("email,prénom\na@example.org,Amina\n", encoding="utf-8")
    assert run("lists", "add", "aura").exit_code == 0
    assert run("contacts", "import", "c.csv", "--list", "aura").exit_code == 0
    assert run("segments", "add", "partenaires-aura", "--list", "aura").exit_code == 0
    assert run("send", REPLAY, "--yes").exit_code == 0
    (workspace / "c.csv").write_text("email,prénom\na@example.org,Aminata\n"
                                     "b@example.org,Bruno\n", encoding="utf-8")
    assert run("contacts", "import", "c.csv", "--update").exit_code == 0
    settings = load_settings(workspace / "config.toml", environ={})
    db = open_database(settings.database_url)
    try:
        with TestClient(create_public_app(settings, db), base_url="http://127.0.0.1") as app:
            sent = app.get(f"/v/{make_token(DEVELOPMENT_SECRET, 1, REPLAY)}")
            later = app.get(f"/v/{make_token(DEVELOPMENT_SECRET, 2, REPLAY)}")
            nobody = app.get(f"/v/{make_token(DEVELOPMENT_SECRET, 99, REPLAY)}")
    finally:
        db.close()
    assert sent.status_code == 200 and "Bonjour Amina," in sent.text
    assert later.status_code == 200 and "Bonjour Bruno," in later.text
    assert nobody.status_code == 404


def test_web_view_follows_a_rescheduled_or_replaced_send(workspace: Path) -> None:
    """What serve keeps of a send is keyed by its version: a reschedule rewrites the row,
    and SQLite gives a deleted send's id to the next one."""
    with_audience(workspace, 1)
    settings = load_settings(workspace / "config.toml", environ={})
    db = open_database(settings.database_url)
    path = workspace / "campaigns" / f"{REPLAY}.md"
    newsletter = "2026-12-15-lettre-decembre"
    try:
        with TestClient(create_public_app(settings, db), base_url="http://127.0.0.1") as app:
            def view(campaign: str) -> str:
                page = app.get(f"/v/{make_token(DEVELOPMENT_SECRET, 1, campaign)}")
                assert page.status_code == 200
                return page.text

            assert run("schedule", REPLAY, "--at", "2099-06-13 09:00").exit_code == 0
            assert "Première version" not in view(REPLAY)
            path.write_text(path.read_text(encoding="utf-8").replace(
                "\n+++\n", "\n+++\nPremière version.\n", 1), encoding="utf-8")
            assert run("schedule", REPLAY, "--at", "2099-06-14 09:00").exit_code == 0
            assert "Première version" in view(REPLAY)
            assert run("unschedule", REPLAY).exit_code == 0
            assert run("schedule", newsletter, "--at", "2099-06-14 09:00",
                       "--segment", "partenaires-aura").exit_code == 0
            assert "Première version" not in view(newsletter)
    finally:
        db.close()


def test_a_web_view_is_read_again_in_a_thread_when_the_database_is_busy(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Views are read in the event loop on a connection that never waits for a lock (in
    WAL mode a reader meets one only rarely: a crash recovery, an exclusive lock). When it
    does, the view is read again in a thread, which may wait (busy_timeout)."""
    with_audience(workspace, 1)
    assert run("send", REPLAY, "--yes").exit_code == 0
    settings = load_settings(workspace / "config.toml", environ={})
    db = open_database(settings.database_url)
    public = create_public_app(settings, db)
    asked: list[str] = []
    real_find = Lookup.find

    def busy_when_quick(self: Lookup, contact_id: int, campaign: str) -> object:
        asked.append("quick" if self.db is not db else "thread")
        if self.db is not db:
            raise DatabaseBusy("the database is locked by another process")
        return real_find(self, contact_id, campaign)

    monkeypatch.setattr(Lookup, "find", busy_when_quick)
    try:
        with TestClient(public, base_url="http://127.0.0.1") as app:
            page = app.get(f"/v/{make_token(DEVELOPMENT_SECRET, 1, REPLAY)}")
    finally:
        db.close()
    assert page.status_code == 200
    assert asked == ["quick", "thread"]


@pytest.mark.parametrize("secret", ["x", DEVELOPMENT_SECRET])
def test_serve_refuses_a_short_or_published_secret(workspace: Path, secret: str) -> None:
    """With the published key anyone could sign a link that unsubscribes a contact or
    opens another's web view: serve does not start with it, nor with a guessable one."""
    refused = subprocess.run([str(CITESMAIL), "serve", "--port", str(free_port())],
                             cwd=workspace, capture_output=True, text=True, timeout=60,
                             env={**os.environ, "CITESMAIL_SECRET": secret})
    assert refused.returncode == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith("error: citesmail serve") and "`citesmail secret`" in line


def test_unsubscribe_through_a_real_server(workspace: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    os.environ["CITESMAIL_UNSUBSCRIBE_BASE_URL"] = base
    os.environ["CITESMAIL_SECRET"] = SECRET
    try:
        refused = run("serve", "--port", str(port), env={"CITESMAIL_SECRET": ""})
        assert refused.exit_code == 1 and "needs CITESMAIL_SECRET" in refused.stderr
        with_audience(workspace, 1)
        assert run("send", REPLAY, "--yes").exit_code == 0
        env = {**os.environ}
        server = subprocess.Popen([str(CITESMAIL), "serve", "--port", str(port)],
                                  cwd=workspace, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            [message] = sent_messages(workspace)
            url = unsubscribe_url(message)
            assert url.startswith(base)
            deadline = time.monotonic() + 20
            while True:
                try:
                    response = httpx.post(url, content=b"List-Unsubscribe=One-Click",
                                          headers={"content-type":
                                                   "application/x-www-form-urlencoded"})
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, "citesmail serve did not start"
                    time.sleep(0.1)
            assert response.status_code == 200
            assert status_of(message["To"].addresses[0].addr_spec) == "unsubscribed"
        finally:
            server.terminate()
            server.wait(timeout=20)
    finally:
        del os.environ["CITESMAIL_UNSUBSCRIBE_BASE_URL"]
        del os.environ["CITESMAIL_SECRET"]
