"""Counted links through a real `citesmail serve` (its own process, over HTTP) on a real
SQLite workspace: a send to the outbox, then its messages' links followed."""

from __future__ import annotations

import email
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from email import policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from citesmail.tracking.tokens import link_token
from tests.cli.test_delivery_commands import with_audience
from tests.conftest import REPLAY, run
from tests.test_intake import SECRET, Serve, serve_in, start_serve, wait_until, write_locked

__all__ = ["serve_in"]  # the fixture, used by name
BASE = "https://lettres.example.org"
COUNTED = re.compile(re.escape(BASE) + r"/c/[A-Za-z0-9._-]+")
BROWSER = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"}


def send(workspace: Path, n: int, **env: str) -> list[EmailMessage]:
    with_audience(workspace, n)
    sent = run("send", REPLAY, "--yes", env={"CITESMAIL_SECRET": SECRET, **env})
    assert sent.exit_code == 0, sent.output
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for p in sorted((workspace / "outbox" / "new").iterdir())]


def parts(message: EmailMessage) -> tuple[str, str]:
    return (message.get_body(("html",)).get_content(),  # type: ignore[union-attr]
            message.get_body(("plain",)).get_content())  # type: ignore[union-attr]


def at(server: Serve, url: str) -> str:
    """A link of the message, sent to this test's serve."""
    return server.base + urlsplit(url).path


def query(workspace: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(workspace / "citesmail.db") as connection:
        return list(connection.execute(sql))


def test_a_sent_messages_links_are_counted_then_redirected(
        workspace: Path, serve_in: list[Serve]) -> None:
    [message] = send(workspace, 1)
    html, text = parts(message)
    links = dict(query(workspace, "SELECT number, url FROM tracked_links"))
    assert links and all(url.startswith("https://") for url in links.values())
    counted = sorted(set(COUNTED.findall(html)) | set(COUNTED.findall(text)))
    assert len(counted) == len(links)
    # every http(s) link points to serve: counted, or the recipient's own
    targets = re.findall(r'href="(https?://[^"]*)"', html) + \
        re.findall(r"https?://[^\s<>]+", text)
    assert all(re.match(re.escape(BASE) + "/[cupv]/", url) for url in targets), targets
    # the recipient's own links stay as they were
    assert f"{BASE}/u/" in html and f"{BASE}/p/" in html and f"{BASE}/v/" in html
    assert str(message["List-Unsubscribe"]).startswith(f"<{BASE}/u/")
    assert all(len(line) <= 78 for line in text.splitlines() if "/c/" in line)
    server = start_serve(workspace, serve_in)
    with httpx.Client(timeout=30) as client:
        for i, url in enumerate(counted):  # one reader each: no burst
            answer = client.get(at(server, url), headers={
                **BROWSER, "x-forwarded-for": f"192.0.2.{i + 1}"})
            number = int(url.rsplit("/", 1)[1].split(".")[1])
            assert answer.status_code == 303 and answer.headers["location"] == links[number]
            assert "no-store" in answer.headers["cache-control"]
    wait_until(lambda: query(workspace, "SELECT sum(clicks) FROM click_counts") ==
               [(len(counted),)], 10, "every click counted")
    assert query(workspace, "SELECT sum(automated) FROM click_counts") == [(0,)]
    assert query(workspace, "SELECT count(*) FROM click_events") == [(0,)]


def test_tokens_that_do_not_verify_get_4xx_and_no_location(
        workspace: Path, serve_in: list[Serve]) -> None:
    [message] = send(workspace, 1)
    [url, *_] = COUNTED.findall(parts(message)[0])
    token = url.rsplit("/", 1)[1]
    send_id, number, tag = token.split(".")
    server = start_serve(workspace, serve_in)
    wrong = [token[:-1], token + "x", token + ".1.AAAAAAAAAAAAAAAA", f"{send_id}.99.{tag}",
             f"{send_id}.{int(number) + 1}.{tag}", f"{int(send_id) + 1}.{number}.{tag}",
             link_token("a-forged-secret-that-is-long-enough-0123456", 1, 1),
             link_token(SECRET, int(send_id), 99),  # signed, but the send has no link 99
             link_token(SECRET, int(send_id) + 1, 1),  # signed, no such send
             "https%3A%2F%2Fevil.example"]
    for bad in wrong:
        answer = httpx.get(f"{server.base}/c/{bad}", headers=BROWSER)
        assert 400 <= answer.status_code < 500 and "location" not in answer.headers, bad
    assert query(workspace, "SELECT count(*) FROM click_counts") == [(0,)]


def test_head_requests_scanners_and_bursts_are_counted_apart(
        workspace: Path, serve_in: list[Serve]) -> None:
    [message] = send(workspace, 1)
    first, second, *_ = sorted(set(COUNTED.findall(parts(message)[0])))
    server = start_serve(workspace, serve_in)
    with httpx.Client(timeout=30) as client:
        assert client.head(at(server, first), headers=BROWSER).status_code == 303
        scanner = {"user-agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"}
        assert client.get(at(server, first), headers=scanner).status_code == 303
        one = {**BROWSER, "x-forwarded-for": "198.51.100.7"}
        assert client.get(at(server, first), headers=one).status_code == 303  # a person
        assert client.get(at(server, second), headers=one).status_code == 303  # every link
    wait_until(lambda: query(workspace, "SELECT sum(clicks), sum(automated) FROM "
                             "click_counts") == [(1, 3)], 10, "1 click and 3 automated")


def test_a_thousand_clicks_while_sqlite_is_locked_are_all_counted(
        workspace: Path, serve_in: list[Serve]) -> None:
    [message] = send(workspace, 1)
    url = sorted(set(COUNTED.findall(parts(message)[0])))[0]
    server = start_serve(workspace, serve_in)
    with write_locked(workspace), httpx.Client(timeout=60, limits=httpx.Limits(
            max_connections=50)) as client:
        with ThreadPoolExecutor(50) as clients:
            answers = list(clients.map(lambda i: client.get(at(server, url), headers={
                **BROWSER, "x-forwarded-for": f"10.0.{i // 250}.{i % 250}"}).status_code,
                range(1000)))
        assert answers == [303] * 1000
        server.wait_for("requests are kept in", 30)  # the database was found locked
    wait_until(lambda: query(workspace, "SELECT sum(clicks) FROM click_counts") == [(1000,)],
               30, "1,000 clicks counted")
    assert query(workspace, "SELECT sum(automated) FROM click_counts") == [(0,)]


def test_individual_clicks_and_pixel_only_for_consenting_contacts(
        workspace: Path, serve_in: list[Serve]) -> None:
    with_audience(workspace, 3)
    query_ids = dict(query(workspace, "SELECT email, id FROM contacts"))
    with sqlite3.connect(workspace / "citesmail.db") as connection:
        connection.execute("UPDATE contacts SET measurement_consent = 1 WHERE email = ?",
                           ("p1@example.org",))
    sent = run("send", REPLAY, "--yes", env={
        "CITESMAIL_SECRET": SECRET, "CITESMAIL_TRACKING_CLICKS": "individual",
        "CITESMAIL_TRACKING_OPENS": "individual"})
    assert sent.exit_code == 0, sent.output
    messages = {str(m["To"]): m for m in (
        email.message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in (workspace / "outbox" / "new").iterdir())}
    agreed = query_ids["p1@example.org"]
    for address, message in messages.items():
        html, text = parts(message)  # type: ignore[arg-type]
        tokens = [u.rsplit("/", 1)[1] for u in COUNTED.findall(html + text)]
        pixel = re.search(re.escape(BASE) + r"/o/([A-Za-z0-9._-]+)", html)
        if address == "p1@example.org":
            assert all(t.count(".") == 4 and t.split(".")[3] == str(agreed) for t in tokens)
            assert pixel is not None
        else:  # aggregate tokens: a send, a link, a tag; no contact
            assert all(t.count(".") == 2 for t in tokens)
            assert pixel is None and "/o/" not in html
    html = parts(messages["p1@example.org"])[0]  # type: ignore[arg-type]
    found = re.search(re.escape(BASE) + r"/o/([A-Za-z0-9._-]+)", html)
    assert found is not None
    server = start_serve(workspace, serve_in)
    pixel = httpx.get(f"{server.base}/o/{found[1]}")
    assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
    assert "no-store" in pixel.headers["cache-control"]
    assert httpx.get(f"{server.base}/o/{found[1][:-1]}").status_code == 404
    url = COUNTED.findall(html)[0]
    assert httpx.get(at(server, url), headers=BROWSER).status_code == 303
    wait_until(lambda: query(workspace, "SELECT contact_id FROM click_events") == [(agreed,)]
               and query(workspace, "SELECT contact_id FROM open_events") == [(agreed,)],
               10, "the click and the open recorded as theirs")
    # sent a moment ago: within seconds of its delivery, the click counts as automated
    assert query(workspace, "SELECT automated FROM click_events") == [(1,)]


def test_no_pixel_when_opens_are_off(workspace: Path) -> None:
    with_audience(workspace, 1)
    with sqlite3.connect(workspace / "citesmail.db") as connection:
        connection.execute("UPDATE contacts SET measurement_consent = 1")
    sent = run("send", REPLAY, "--yes", env={"CITESMAIL_SECRET": SECRET,
                                             "CITESMAIL_TRACKING_CLICKS": "individual"})
    assert sent.exit_code == 0, sent.output
    [path] = (workspace / "outbox" / "new").iterdir()
    html = parts(email.message_from_bytes(path.read_bytes(), policy=policy.default))[0]  # type: ignore[arg-type]
    assert "/o/" not in html and COUNTED.search(html)


def test_clicks_off_leaves_links_alone(workspace: Path) -> None:
    [message] = send(workspace, 1, CITESMAIL_TRACKING_CLICKS="off")
    html, text = parts(message)
    assert "/c/" not in html and "/c/" not in text
    assert "https://example.org/" in html


def test_unsubscribe_and_web_view_name_their_campaign(
        workspace: Path, serve_in: list[Serve]) -> None:
    [message] = send(workspace, 1)
    html = parts(message)[0]
    unsubscribe = re.search(re.escape(BASE) + r"/u/[A-Za-z0-9._-]+", html)
    web_view = re.search(re.escape(BASE) + r"/v/[A-Za-z0-9._-]+", html)
    assert unsubscribe and web_view
    server = start_serve(workspace, serve_in)
    assert httpx.get(at(server, web_view[0])).status_code == 200
    answer = httpx.post(at(server, unsubscribe[0]), content=b"List-Unsubscribe=One-Click",
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200
    wait_until(lambda: query(workspace, "SELECT campaign FROM consent_events "
                             "WHERE kind = 'unsubscribe'") == [(REPLAY,)], 10,
               "the unsubscribe's event names the campaign")
    wait_until(lambda: query(workspace, "SELECT campaign, views FROM web_view_counts")
               == [(REPLAY, 1)], 10, "the web view counted")
