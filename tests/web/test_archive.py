"""serve's /archive/: the published site answered from the database and the files,
rebuilt when either changes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
from starlette.testclient import TestClient

from citesmail.config import load_settings
from citesmail.db import open_database
from citesmail.web.public import create_public_app
from tests.conftest import EVENT, NEWSLETTER, REPLAY, run
from tests.publish.helpers import CONTACTS, with_sends

BASE = "https://lettres.example.org/archive/"  # the example config's base_url + /archive/


@pytest.fixture
def client(workspace: Path) -> Iterator[TestClient]:
    with_sends(workspace)
    settings = load_settings(workspace / "config.toml", environ={})
    db = open_database(settings.database_url)
    with TestClient(create_public_app(settings, db), follow_redirects=False) as test_client:
        yield test_client
    db.close()


def test_archive_serves_the_published_pages(client: TestClient, workspace: Path) -> None:
    index = client.get("/archive/")
    assert index.status_code == 200 and index.headers["content-type"] == "text/html; charset=utf-8"
    assert index.headers["cache-control"] == "public, max-age=300"
    assert "default-src 'none'" in index.headers["content-security-policy"]
    assert f'href="{REPLAY}/index.html"' in index.text and NEWSLETTER not in index.text
    page = client.get(f"/archive/{REPLAY}/")
    assert page.status_code == 200 and "Voir le replay" in page.text
    assert f'<link rel="canonical" href="{BASE}{REPLAY}/">' in page.text
    assert client.get(f"/archive/{REPLAY}/index.html").text == page.text
    assert client.get(f"/archive/{REPLAY}").headers["location"] == f"/archive/{REPLAY}/"
    assert client.get("/archive").headers["location"] == "/archive/"
    feed = client.get("/archive/feed.xml")
    assert feed.headers["content-type"] == "application/xml; charset=utf-8"
    assert feedparser.parse(feed.content).bozo == 0
    calendar = client.get("/archive/events.ics")
    assert calendar.headers["content-type"] == "text/calendar; charset=utf-8"
    assert f"UID:{EVENT}@example.org" in calendar.text
    assert client.get(f"/archive/{EVENT}/event.ics").status_code == 200
    for missing in (f"/archive/{NEWSLETTER}/", "/archive/../config.toml",
                    "/archive/.citesmail-publish", "/archive/nothing.html"):
        assert client.get(missing).status_code == 404, missing
    everything = "".join(client.get(f"/archive/{path}").text for path in (
        "", f"{REPLAY}/", f"{EVENT}/", "feed.xml", "events.ics", "sitemap.xml"))
    for address, first, last, _ in CONTACTS:
        assert address not in everything and first not in everything
        assert last not in everything


def test_archive_follows_the_campaign_files(client: TestClient, workspace: Path) -> None:
    assert "sont en libre accès" in client.get(f"/archive/{REPLAY}/").text
    path = workspace / "campaigns" / f"{REPLAY}.md"
    path.write_text(path.read_text("utf-8").replace("sont en libre accès", "sont en ligne"),
                    encoding="utf-8")
    later = path.stat().st_mtime + 60
    os.utime(path, (later, later))
    assert "sont en ligne" in client.get(f"/archive/{REPLAY}/").text
    path.write_text(path.read_text("utf-8").replace('kind = "replay"',
                                                    'kind = "replay"\narchive = false'),
                    encoding="utf-8")
    os.utime(path, (later + 60, later + 60))
    assert client.get(f"/archive/{REPLAY}/").status_code == 404
    assert REPLAY not in client.get("/archive/").text
    assert run("unschedule", EVENT).exit_code == 0
    assert client.get(f"/archive/{EVENT}/").status_code == 404
