"""`citesmail publish`: which campaigns, the pages' content, the feeds as feed readers
and calendars read them, and no personal data anywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.etree import ElementTree

import feedparser
from bs4 import BeautifulSoup
from icalendar import Calendar
from sqlalchemy import select

from citesmail.config import load_settings
from citesmail.db import Send, open_database
from citesmail.render.environment import BUILTIN_TEMPLATES
from tests.conftest import EVENT, NEWSLETTER, REPLAY, run
from tests.publish.helpers import BASE, CONTACTS, mtimes, publish, with_sends

SITEMAP = "http://www.sitemaps.org/schemas/sitemap/0.9"


def _stored(workspace: Path, column: Any, campaign: str) -> Any:
    """A column of a campaign's send, as the database holds it."""
    db = open_database(load_settings(workspace / "config.toml", environ={}).database_url)
    try:
        with db.session(write=False) as session:
            return session.scalar(select(column).where(Send.campaign == campaign))
    finally:
        db.close()


def _files(site: Path) -> set[str]:
    return {str(p.relative_to(site)) for p in site.rglob("*") if p.is_file()}


def test_sent_and_scheduled_are_published_drafts_only_when_asked(workspace: Path) -> None:
    with_sends(workspace)
    said = publish()
    assert said.startswith("site: 2 campaigns, ")
    site = workspace / "site"
    assert _files(site) == {
        ".citesmail-publish", "index.html", "index-event.html", "index-replay.html",
        "feed.xml", "events.ics", "sitemap.xml", f"{REPLAY}/index.html",
        f"{EVENT}/index.html", f"{EVENT}/event.ics"}
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "Brouillon" not in index and NEWSLETTER not in index
    upcoming, latest = index.index("À venir"), index.index("Dernières annonces")
    assert upcoming < index.index(f"{EVENT}/index.html") < latest < index.index(REPLAY)
    assert "Programmé" in index  # the invitation's send is scheduled
    publish("--drafts")
    draft = (site / NEWSLETTER / "index.html").read_text(encoding="utf-8")
    assert '<span class="badge draft">Brouillon</span>' in draft
    assert '<meta name="robots" content="noindex">' in draft
    assert NEWSLETTER not in (site / "sitemap.xml").read_text(encoding="utf-8")


def test_replay_page_is_the_announcement_as_a_web_page(workspace: Path) -> None:
    with_sends(workspace)
    publish()
    page = BeautifulSoup((workspace / "site" / REPLAY / "index.html").read_text("utf-8"),
                         "html.parser")
    assert page.html["lang"] == "fr" and page.find("table") is None
    assert page.h1.get_text().startswith("Les cités de l'emploi")
    assert [h.get_text() for h in page.find_all("h2")] == [
        "Objectifs", "Public", "Déroulé", "Intervenants"]
    groups = [h.get_text() for h in page.select(".people h3")]
    assert groups[:2] == ["Cité de l'emploi de Grenoble", "Cité de l'emploi de Saint-Étienne"]
    buttons = {a.get_text(): a["href"] for a in page.select("a.button")}
    assert buttons == {
        "Voir le replay": "https://example.org/replays/cites-de-l-emploi-2023",
        "Télécharger le support":
            "https://example.org/documents/cites-de-l-emploi-2023-support.pdf"}
    assert "Bonjour à toutes et à tous," in page.get_text()  # the placeholder's default
    meta = {m["property"]: m["content"] for m in page.find_all("meta", property=True)}
    assert meta["og:title"].startswith("Les cités de l'emploi")
    assert meta["og:url"] == f"{BASE}{REPLAY}/" and meta["og:locale"] == "fr_FR"
    assert meta["og:description"].startswith("Vous avez manqué la visio-conférence")


def test_event_page_has_calendar_links_and_event_json_ld(workspace: Path) -> None:
    with_sends(workspace)
    publish()
    page = BeautifulSoup((workspace / "site" / EVENT / "index.html").read_text("utf-8"),
                         "html.parser")
    links = {a.get_text(): a["href"] for a in page.select(".calendar a")}
    assert links["fichier .ics (Apple, Thunderbird…)"] == "event.ics"
    assert links["Google Agenda"].startswith("https://calendar.google.com/")
    [script] = page.find_all("script", type="application/ld+json")
    data = json.loads(script.string)
    assert data["@type"] == "Event" and data["@context"] == "https://schema.org"
    assert data["startDate"] == "2027-01-19T10:00:00+01:00"
    assert data["endDate"] == "2027-01-19T12:00:00+01:00"
    assert data["location"] == {"@type": "VirtualLocation",
                                "url": "https://example.org/visio/emploi-des-jeunes"}
    assert data["eventAttendanceMode"] == "https://schema.org/OnlineEventAttendanceMode"
    assert data["organizer"] == {"@type": "Organization", "name": "Labo Cités",
                                 "url": "https://example.org"}
    assert data["url"] == f"{BASE}{EVENT}/"


def test_json_ld_cannot_be_closed_by_a_title(workspace: Path) -> None:
    path = workspace / "campaigns" / f"{EVENT}.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('title = "L\'emploi', 'title = "</script><b>x</b> L\'emploi'),
                    encoding="utf-8")
    publish("--drafts")
    html = (workspace / "site" / EVENT / "index.html").read_text("utf-8")
    script = html.split('<script type="application/ld+json">')[1].split("</script>")[0]
    assert json.loads(script)["name"].startswith("</script><b>x</b>")


def test_atom_feed_is_valid_with_full_content(workspace: Path) -> None:
    with_sends(workspace)
    publish()
    feed = feedparser.parse((workspace / "site" / "feed.xml").read_bytes())
    assert feed.bozo == 0, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "Labo Cités" and feed.feed.id == BASE
    assert [e.id for e in feed.entries] == [f"{BASE}{EVENT}/", f"{BASE}{REPLAY}/"]
    replay = feed.entries[1]
    assert replay.link == f"{BASE}{REPLAY}/"
    content = replay.content[0].value
    assert "Voir le replay" in content and "Céline Mourier" in content
    assert "Bonjour à toutes et à tous" in content
    started = _stored(workspace, Send.started_at, REPLAY)
    assert started is not None
    assert replay.published == started.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_events_ics_carries_the_invitations_uid_in_paris_time(workspace: Path) -> None:
    with_sends(workspace)
    publish()
    feed = Calendar.from_ical((workspace / "site" / "events.ics").read_bytes())
    [event] = feed.walk("VEVENT")
    [zone] = feed.walk("VTIMEZONE")
    assert str(zone["TZID"]) == "Europe/Paris"
    assert event["DTSTART"].params["TZID"] == "Europe/Paris"
    assert event.decoded("DTSTART").isoformat() == "2027-01-19T10:00:00+01:00"
    stored = _stored(workspace, Send.calendar, EVENT)
    assert stored is not None  # the invitation the scheduled send will attach
    [invited] = Calendar.from_ical(stored).walk("VEVENT")
    assert str(event["UID"]) == str(invited["UID"]) == f"{EVENT}@example.org"
    own = Calendar.from_ical((workspace / "site" / EVENT / "event.ics").read_bytes())
    assert str(next(iter(own.walk("VEVENT")))["UID"]) == str(invited["UID"])


def test_nothing_changed_writes_nothing_and_a_change_rewrites_only_its_files(
        workspace: Path) -> None:
    with_sends(workspace)
    publish()
    site = workspace / "site"
    before = mtimes(site)
    assert "0 files written" in publish()
    assert mtimes(site) == before
    path = workspace / "campaigns" / f"{REPLAY}.md"
    path.write_text(path.read_text("utf-8").replace("sont en libre accès", "sont en ligne"),
                    encoding="utf-8")
    later = path.stat().st_mtime + 3600
    os.utime(path, (later, later))
    assert "5 files written" in publish()
    after = mtimes(site)
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {f"{REPLAY}/index.html", "index.html", "index-replay.html",
                       "feed.xml", "sitemap.xml"}
    assert "sont en ligne" in (site / REPLAY / "index.html").read_text("utf-8")


def test_archive_false_takes_a_campaign_off_the_site(workspace: Path) -> None:
    with_sends(workspace)
    publish()
    path = workspace / "campaigns" / f"{REPLAY}.md"
    path.write_text(path.read_text("utf-8").replace('kind = "replay"',
                                                    'kind = "replay"\narchive = false'),
                    encoding="utf-8")
    said = publish()
    assert said.startswith("site: 1 campaigns, ") and "2 removed" in said
    site = workspace / "site"
    assert not (site / REPLAY).exists() and not (site / "index-replay.html").exists()
    assert REPLAY not in (site / "feed.xml").read_text("utf-8")
    (site / "notes.txt").write_text("not ours", encoding="utf-8")
    publish()
    assert (site / "notes.txt").exists()  # only what publish wrote is ever removed


def test_archive_must_be_a_boolean(workspace: Path) -> None:
    path = workspace / "campaigns" / f"{REPLAY}.md"
    path.write_text(path.read_text("utf-8").replace('kind = "replay"',
                                                    'kind = "replay"\narchive = "no"'),
                    encoding="utf-8")
    done = run("check", REPLAY)
    assert done.exit_code != 0 and "archive" in done.output and ":3:" in done.output


def test_no_personal_data_in_any_byte(workspace: Path) -> None:
    with_sends(workspace)
    publish("--drafts")
    site = workspace / "site"
    data = b"".join(path.read_bytes() for path in site.rglob("*") if path.is_file())
    text = data.decode("utf-8")
    for address, first, last, organization in CONTACTS:
        for value in (address, first, last, organization):
            if value:
                assert value not in text, value
    for leak in ("@@cm", "/u/", "/v/", "/p/", "unsubscribe", "désabonner"):
        assert leak not in text.lower(), leak


def test_links_are_relative_and_lead_somewhere_or_are_under_the_base(workspace: Path) -> None:
    with_sends(workspace)
    publish("--drafts")
    site = workspace / "site"
    host = urlsplit(BASE).netloc
    for page in site.rglob("*.html"):
        soup = BeautifulSoup(page.read_text("utf-8"), "html.parser")
        here = f"{BASE}{page.relative_to(site)}"
        for tag in soup.find_all(["a", "link", "img", "meta"]):
            link = tag.get("href") or tag.get("src") or (
                tag.get("content") if tag.get("property") == "og:url" else None)
            if not link:
                continue
            parts = urlsplit(link)
            if parts.scheme:
                assert parts.netloc != host or link.startswith(BASE), (page, link)
                continue
            assert not link.startswith("/"), (page, link)  # deployable under any folder
            target = urljoin(here, link)[len(BASE):].partition("#")[0]
            assert (site / target).is_file(), (page, link)
    sitemap = ElementTree.parse(site / "sitemap.xml").getroot()
    locs = [loc.text or "" for loc in sitemap.iter(f"{{{SITEMAP}}}loc")]
    assert locs[0] == BASE and all(loc.startswith(BASE) for loc in locs) and len(locs) == 3


def test_workspace_templates_override_the_pages(workspace: Path) -> None:
    (workspace / "templates" / "web").mkdir()
    (workspace / "templates" / "web" / "content.html.j2").write_text(
        "<p>Notre version : {{ campaign.title }}</p>\n", encoding="utf-8")
    publish("--drafts")
    page = (workspace / "site" / REPLAY / "index.html").read_text("utf-8")
    assert "<p>Notre version : Les cités de l&#39;emploi" in page
    assert "Notre version" in (workspace / "site" / "feed.xml").read_text("utf-8")


def test_a_workspace_page_that_includes_the_content_prints_the_same(workspace: Path) -> None:
    """The built-in page prints the content rendered once (`content`); a workspace's copy
    of it that includes web/content.html.j2, as the built-in one used to, prints the
    same bytes."""
    publish("--drafts")
    built_in = {slug: (workspace / "site" / slug / "index.html").read_bytes()
                for slug in (REPLAY, EVENT, NEWSLETTER)}
    page = (BUILTIN_TEMPLATES / "web" / "campaign.html.j2").read_text("utf-8")
    assert "{{ content }}</article>" in page
    (workspace / "templates" / "web").mkdir()
    (workspace / "templates" / "web" / "campaign.html.j2").write_text(
        page.replace("{{ content }}</article>",
                     '{% include "web/content.html.j2" %}\n</article>'), encoding="utf-8")
    publish("--drafts")
    assert {slug: (workspace / "site" / slug / "index.html").read_bytes()
            for slug in built_in} == built_in


def test_a_bad_base_url_is_refused(workspace: Path) -> None:
    done = run("publish", "--base-url", "www.example.net/annonces")
    assert done.exit_code == 1
    assert done.stderr.startswith("error: --base-url 'www.example.net/annonces' is not a web")
    assert not (workspace / "site").exists()
