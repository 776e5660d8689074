"""publish's cache (.citesmail/publish-*.sqlite): unchanged campaigns are not rendered
again, anything a page depends on renders it again, and the site is byte for byte the
one a cold publish makes."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from citesmail.config import load_settings
from citesmail.publish import PartCache, build_site, cache_path, select_sources
from citesmail.render.environment import BUILTIN_TEMPLATES
from tests.conftest import EVENT, NEWSLETTER, REPLAY, run, write
from tests.publish.helpers import BASE, publish, with_sends

CAMPAIGNS = 3


def _rendered(said: str) -> int:
    found = re.search(r"\((\d+) rendered\)", said)
    assert found is not None, said
    return int(found.group(1))


def _cache(workspace: Path) -> Path:
    [path] = (workspace / ".citesmail").glob("publish-*.sqlite")
    return path


def _site(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def _cold(workspace: Path, *args: str) -> dict[str, bytes]:
    """The site a publish with no cache makes (a new output folder has none)."""
    assert not (workspace / "cold").exists()
    done = run("publish", "-o", "cold", "--base-url", BASE, *args)
    assert done.exit_code == 0, done.output
    return _site(workspace / "cold")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    later = path.stat().st_mtime + 3600
    os.utime(path, (later, later))


def test_only_changed_campaigns_are_rendered_again(workspace: Path) -> None:
    with_sends(workspace)
    assert _rendered(publish("--drafts")) == CAMPAIGNS
    assert _rendered(publish("--drafts")) == 0
    _edit(workspace / "campaigns" / f"{REPLAY}.md", "sont en libre accès", "sont en ligne")
    assert _rendered(publish("--drafts")) == 1
    assert "sont en ligne" in (workspace / "site" / REPLAY / "index.html").read_text("utf-8")
    assert _rendered(publish("--drafts", "--base-url", "https://autre.example.net/")) \
        == CAMPAIGNS  # canonical addresses are in every page


def test_a_changed_template_renders_every_page_again(workspace: Path) -> None:
    with_sends(workspace)
    publish("--drafts")
    content = (BUILTIN_TEMPLATES / "web" / "content.html.j2").read_text("utf-8")
    write(workspace / "templates" / "web" / "content.html.j2",
          "<p class=\"ours\">Centre de ressources</p>\n" + content)
    assert _rendered(publish("--drafts")) == CAMPAIGNS
    for slug in (REPLAY, EVENT, NEWSLETTER):
        assert 'class="ours"' in (workspace / "site" / slug / "index.html").read_text("utf-8")
    (workspace / "templates" / "web" / "content.html.j2").unlink()
    assert _rendered(publish("--drafts")) == CAMPAIGNS
    assert 'class="ours"' not in (workspace / "site" / REPLAY / "index.html").read_text("utf-8")


def test_a_changed_setting_renders_every_page_again(workspace: Path) -> None:
    with_sends(workspace)
    publish()
    _edit(workspace / "config.toml", 'name = "Labo Cités"', 'name = "Labo des Cités"')
    assert _rendered(publish()) == 2
    assert "Labo des Cités" in (workspace / "site" / REPLAY / "index.html").read_text("utf-8")


def test_a_send_that_starts_renders_its_draft_again(workspace: Path) -> None:
    with_sends(workspace)
    publish("--drafts")
    page = workspace / "site" / NEWSLETTER / "index.html"
    assert "Brouillon" in page.read_text("utf-8")
    assert run("segments", "add", "abonnes-lettre", "--list", "reseau").exit_code == 0
    done = run("send", NEWSLETTER, "--yes")
    assert done.exit_code == 0, done.output
    assert _rendered(publish("--drafts")) == 1
    assert "Brouillon" not in page.read_text("utf-8")
    assert NEWSLETTER in (workspace / "site" / "sitemap.xml").read_text("utf-8")
    assert _site(workspace / "site") == _cold(workspace, "--drafts")


def test_the_site_is_the_same_bytes_as_a_cold_publish(workspace: Path) -> None:
    with_sends(workspace)
    publish("--drafts")
    _edit(workspace / "campaigns" / f"{EVENT}.md", "Bonjour", "Bonjour encore")
    _edit(workspace / "campaigns" / f"{REPLAY}.md", 'kind = "replay"',
          'kind = "replay"\narchive = false')
    assert run("unschedule", EVENT).exit_code == 0  # its send cancelled: a draft again
    said = publish("--drafts")
    assert _rendered(said) == 2  # the event (edited, unscheduled), the replay (taken off);
    # the newsletter's page, and its place in the index and the feeds, from the cache
    incremental = _site(workspace / "site")
    assert f"{REPLAY}/index.html" not in incremental
    assert incremental == _cold(workspace, "--drafts")


def test_a_damaged_cache_is_not_used(workspace: Path) -> None:
    with_sends(workspace)
    publish("--drafts")
    cold = _site(workspace / "site")
    cache = _cache(workspace)
    cache.write_bytes(b"SQLite format 3\x00" + b"\xff" * 500)
    assert _rendered(publish("--drafts")) == CAMPAIGNS
    assert _site(workspace / "site") == cold
    assert _rendered(publish("--drafts")) == 0  # made again
    cache.write_text("not a cache", encoding="utf-8")
    assert _rendered(publish("--drafts")) == CAMPAIGNS
    assert _site(workspace / "site") == cold


def test_a_row_that_is_not_what_this_version_stores_is_rendered_again(
        workspace: Path) -> None:
    with_sends(workspace)
    publish("--drafts")
    cold = _site(workspace / "site")
    with sqlite3.connect(_cache(workspace)) as connection:
        connection.execute("UPDATE parts SET part = replace(part, '\"page\": \"', "
                           "'\"page\": 1, \"x\": \"') WHERE slug = ?", (REPLAY,))
        connection.execute("UPDATE parts SET part = '{\"slug\": ' WHERE slug = ?", (EVENT,))
        connection.execute("INSERT INTO parts VALUES (?, 'k', 'null')", ("gone",))
    connection.close()
    assert _rendered(publish("--drafts")) == 2
    assert _site(workspace / "site") == cold
    with sqlite3.connect(_cache(workspace)) as connection:
        slugs = {slug for (slug,) in connection.execute("SELECT slug FROM parts")}
    connection.close()
    assert slugs == {REPLAY, EVENT, NEWSLETTER}


def test_the_cache_is_not_in_the_published_folder(workspace: Path) -> None:
    with_sends(workspace)
    publish()
    assert not any("cache" in path.name or path.suffix == ".sqlite"
                   for path in (workspace / "site").rglob("*"))
    assert _cache(workspace).is_file()


def test_the_calendar_feeds_head_is_kept_for_its_zones_and_years(workspace: Path) -> None:
    """events.ics's text before its events (properties, VTIMEZONEs) is kept for the next
    publish; one with other years or another zone is made again."""
    with_sends(workspace)
    publish("--drafts")
    event = (workspace / "campaigns" / f"{EVENT}.md").read_text("utf-8")
    write(workspace / "campaigns" / "plus-tard.md", event.replace("2027-01-19", "2029-03-06"))
    publish("--drafts")
    feed = (workspace / "site" / "events.ics").read_text("utf-8")
    assert "from 2027-01-01 to 2030-01-01" in feed  # the zone's rules to the new year
    assert _site(workspace / "site") == _cold(workspace, "--drafts")
    _edit(workspace / "config.toml", 'timezone = "Europe/Paris"',
          'timezone = "America/Montreal"')
    publish("--drafts")
    assert "TZID:America/Montreal" in (workspace / "site" / "events.ics").read_text("utf-8")
    _edit(workspace / "config.toml", 'name = "Labo Cités"', 'name = "Labo des Cités"')
    publish("--drafts")  # the same zone and years: the site's key tells them apart
    assert "X-WR-CALNAME:Labo des Cités" in (workspace / "site" / "events.ics").read_text(
        "utf-8")
    site_cache = cache_path(load_settings(workspace / "config.toml", environ={}),
                            workspace / "site")
    with sqlite3.connect(site_cache) as connection:
        assert connection.execute("SELECT count(*) FROM heads").fetchone() == (1,)
    connection.close()
    shutil.rmtree(workspace / "cold")
    assert _site(workspace / "site") == _cold(workspace, "--drafts")


def test_a_campaign_is_rendered_from_the_bytes_its_key_names(workspace: Path) -> None:
    """A file changed between the reading of the campaigns and its rendering: the page
    kept under the key of the bytes read says what those bytes say."""
    settings = load_settings(workspace / "config.toml", environ={})
    sources = select_sources(settings, None, drafts=True)
    _edit(workspace / "campaigns" / f"{REPLAY}.md", "sont en libre accès", "sont en ligne")
    cache, now = PartCache(), datetime.now(UTC)
    page = f"{REPLAY}/index.html"
    first = build_site(sources, settings, BASE, now, cache)
    assert "sont en libre accès" in first.files[page].decode("utf-8")
    again = build_site(select_sources(settings, None, drafts=True), settings, BASE, now, cache)
    assert again.rendered == 1 and "sont en ligne" in again.files[page].decode("utf-8")
