"""What both web apps answer at their edges: errors, wrong methods, incomplete one-click
requests, other sites' hosts and frames."""

from __future__ import annotations

import base64
import email
import hashlib
import re
import sqlite3
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from citesmail.config import load_settings
from citesmail.db import open_database
from citesmail.web.preview import create_preview_app
from citesmail.web.public import create_public_app
from tests.cli.test_delivery_commands import with_audience
from tests.conftest import REPLAY, run

LOCAL = "http://127.0.0.1"


@pytest.fixture
def public(workspace: Path) -> Iterator[tuple[TestClient, list[str]]]:
    """The public app (a 500 is answered, not raised) and the sent unsubscribe paths."""
    with_audience(workspace, 2)
    assert run("send", REPLAY, "--yes").exit_code == 0
    paths = []
    for path in sorted((workspace / "outbox" / "new").iterdir()):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        link = str(message["List-Unsubscribe"]).split(",")[0].strip()[1:-1]
        paths.append("/u/" + link.split("/u/", 1)[1])
    settings = load_settings(workspace / "config.toml", environ={})
    db = open_database(settings.database_url)
    with TestClient(create_public_app(settings, db), raise_server_exceptions=False) as client:
        yield client, paths
    db.close()


@pytest.fixture
def preview(workspace: Path) -> Iterator[TestClient]:
    with_audience(workspace, 1)
    settings = load_settings(workspace / "config.toml", environ={})
    app = create_preview_app(settings, settings.database_url)
    with TestClient(app, base_url=LOCAL, raise_server_exceptions=False) as client:
        yield client


def break_the_database(workspace: Path) -> None:
    """A fault no handler expects: the contacts table is gone."""
    with sqlite3.connect(workspace / "citesmail.db") as connection:
        connection.execute("ALTER TABLE contacts RENAME TO contacts_gone")


def assert_security_headers(response: object, frames: str = "'none'") -> None:
    headers = response.headers  # type: ignore[attr-defined]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert f"frame-ancestors {frames}" in headers["content-security-policy"]
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == ("DENY" if frames == "'none'" else "SAMEORIGIN")
    assert len(headers.get_list("content-security-policy")) == 1


def test_a_500_carries_the_security_headers(public: tuple[TestClient, list[str]],
                                            workspace: Path) -> None:
    client, [path, _] = public
    assert_security_headers(client.get(path))
    break_the_database(workspace)
    for response in (client.get(path), client.post(path, content=b"List-Unsubscribe=One-Click"),
                     client.get(path.replace("/u/", "/v/"))):
        assert response.status_code == 500
        assert_security_headers(response)
        assert "Traceback" not in response.text and "contacts" not in response.text


def test_a_500_of_the_preview_carries_its_headers(preview: TestClient,
                                                  workspace: Path) -> None:
    break_the_database(workspace)
    response = preview.get(f"/campaigns/{REPLAY}")
    assert response.status_code == 500
    assert_security_headers(response)


def test_a_wrong_method_on_an_unsubscribe_link_lists_the_right_ones(
        public: tuple[TestClient, list[str]]) -> None:
    client, [path, _] = public
    for method in ("PUT", "DELETE", "PATCH"):
        response = client.request(method, path)
        assert response.status_code == 405
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert {"GET", "POST"} <= allowed, response.headers["allow"]
        assert_security_headers(response)


def test_a_post_without_one_click_offers_the_confirmation_button(
        public: tuple[TestClient, list[str]]) -> None:
    client, [path, other] = public
    page = client.post(path, content=b"")
    assert page.status_code == 400  # not an RFC 8058 request: nothing changed
    form = re.search(r'<form method="post">(.*?)</form>', page.text)
    assert form and '<input type="hidden" name="confirm" value="1">' in form.group(1)
    assert "<button>Me désabonner</button>" in form.group(1)
    address = "p0@example.org" if "p0@example.org" in page.text else "p1@example.org"
    assert "status:        active" in run("contacts", "show", address).stdout
    done = client.post(path, data={"confirm": "1"})  # the button, pressed
    assert done.status_code == 200
    assert "status:        unsubscribed" in run("contacts", "show", address).stdout
    assert client.get(other).text.count("<form") == 1  # the GET page: the same form


def test_the_preview_answers_only_to_this_machine(preview: TestClient) -> None:
    for host in ("127.0.0.1", "127.0.0.1:8000", "localhost", "localhost:8123"):
        assert preview.get("/", headers={"host": host}).status_code == 200, host
    for host in ("testserver", "evil.example", "evil.example:8000", "127.0.0.1.evil.example",
                 "localhost.evil.example:8000", "192.168.1.10:8000"):
        refused = preview.get("/", headers={"host": host})
        assert refused.status_code == 400, host
        assert_security_headers(refused)


def test_the_preview_frames_the_email_in_its_own_pages_only(preview: TestClient) -> None:
    page = preview.get(f"/campaigns/{REPLAY}")
    assert page.status_code == 200
    assert_security_headers(page)
    policy_text = page.headers["content-security-policy"]
    script = re.search(r"<script>(.*?)</script>", page.text)
    assert script and "'unsafe-inline'" not in policy_text.split("script-src")[1].split(";")[0]
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy_text  # the live reload, and only it
    assert "connect-src 'self'" in policy_text
    assert "frame-src 'self'" in policy_text
    framed = preview.get(f"/campaigns/{REPLAY}/html")
    assert framed.status_code == 200
    assert_security_headers(framed, frames="'self'")
    assert "script-src" not in framed.headers["content-security-policy"]
    for part in ("text", "eml", ""):
        assert_security_headers(preview.get(f"/campaigns/{REPLAY}/{part}".rstrip("/")))
    assert_security_headers(preview.get("/"))
