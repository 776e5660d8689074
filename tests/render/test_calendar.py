"""Event campaigns in calendars: the ICS invitation in the message and on the web view,
the "add to calendar" links, and the checks on when the event is."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import icalendar
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from citesmail.campaigns import load_campaign
from citesmail.config import Settings, load_settings
from citesmail.db import open_database
from citesmail.message import (
    SAMPLE_RECIPIENT,
    MessageTemplate,
    Recipient,
    reference_message,
    to_bytes,
)
from citesmail.render import render_campaign
from citesmail.render.calendar import invitation, zone_component
from citesmail.web.public import create_public_app
from tests.cli.test_delivery_commands import with_audience
from tests.conftest import EVENT, EXAMPLES, NEWSLETTER, REPLAY, ROOT, run, write

PARIS = ZoneInfo("Europe/Paris")


def settings() -> Settings:
    return load_settings(ROOT / "config.example.toml", environ={})


def rendered(slug: str = EVENT):  # type: ignore[no-untyped-def]
    cfg = settings()
    campaign = load_campaign(EXAMPLES / f"{slug}.md", default_lang="fr", tz=cfg.tz)
    return render_campaign(campaign, cfg)


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def event_of(ics: str | bytes) -> icalendar.Event:
    calendar = icalendar.Calendar.from_ical(ics)
    assert calendar["METHOD"] == "PUBLISH"
    [event] = calendar.walk("VEVENT")
    return event


def test_the_example_event_invitation_reads_back_in_paris_time() -> None:
    ics = rendered().calendar
    assert ics is not None
    calendar = icalendar.Calendar.from_ical(ics)
    [zone] = calendar.walk("VTIMEZONE")
    assert zone["TZID"] == "Europe/Paris"
    event = event_of(ics)
    starts, ends = event.decoded("DTSTART"), event.decoded("DTEND")
    assert starts == datetime(2027, 1, 19, 10, 0, tzinfo=PARIS)
    assert ends == datetime(2027, 1, 19, 12, 0, tzinfo=PARIS)
    assert starts.astimezone(UTC).hour == 9  # winter: Paris is UTC+1
    assert event["DTSTART"].params["TZID"] == "Europe/Paris"
    assert str(event["LOCATION"]) == "En visio-conférence"
    assert str(event["SUMMARY"]).startswith("L'emploi des jeunes des quartiers")
    assert str(event["URL"]) == "https://example.org/evenements/emploi-des-jeunes/inscription"
    description = str(event["DESCRIPTION"])
    assert "https://example.org/visio/emploi-des-jeunes" in description
    assert str(event["ORGANIZER"]) == "mailto:annonces@example.org"
    assert all(len(line.encode()) <= 75 for line in ics.split("\r\n"))


def test_the_uid_is_stable_across_renders_and_the_stamp_is_not() -> None:
    cfg = settings()
    campaign = load_campaign(EXAMPLES / f"{EVENT}.md", default_lang="fr", tz=cfg.tz)
    first = event_of(invitation(campaign, cfg, stamp=datetime(2026, 1, 1, tzinfo=UTC)) or "")
    second = event_of(rendered().calendar or "")
    assert first["UID"] == second["UID"] == f"{EVENT}@example.org"
    assert first.decoded("DTSTAMP") != second.decoded("DTSTAMP")


def test_an_event_in_summer_keeps_its_local_hour(workspace: Path) -> None:
    text = (workspace / "campaigns" / f"{EVENT}.md").read_text(encoding="utf-8")
    write(workspace / "campaigns" / "ete.md", text.replace("2027-01-19T10:00:00",
                                                           "2027-07-06T09:30:00")
          .replace("2027-01-19T12:00:00", "2027-07-06T11:00:00"))
    cfg = load_settings(workspace / "config.toml", environ={})
    campaign = load_campaign(workspace / "campaigns" / "ete.md", default_lang="fr", tz=cfg.tz)
    event = event_of(invitation(campaign, cfg) or "")
    assert event.decoded("DTSTART") == datetime(2027, 7, 6, 9, 30, tzinfo=PARIS)
    assert event.decoded("DTSTART").astimezone(UTC).hour == 7  # summer: UTC+2


def _as_icalendar_writes_it(ics: str, zone: icalendar.Timezone | None) -> str:
    """The invitation's calendar written by icalendar with `zone` added as a component
    before its VEVENT (how invitations were made before their zone's text was kept)."""
    read = icalendar.Calendar.from_ical(ics)
    calendar = icalendar.Calendar()
    for name, value in read.property_items(recursive=False)[1:-1]:  # BEGIN, END
        calendar.add(name, value)
    if zone is not None:
        calendar.add_component(zone)
    calendar.add_component(next(iter(read.walk("VEVENT"))))
    text: str = calendar.to_ical().decode("utf-8")
    return text


def test_the_zone_is_written_where_icalendar_puts_it(workspace: Path) -> None:
    """Over new year (two years of rules), and in UTC (no VTIMEZONE at all)."""
    text = (workspace / "campaigns" / f"{EVENT}.md").read_text(encoding="utf-8")
    write(workspace / "campaigns" / "reveillon.md", text.replace(
        "2027-01-19T10:00:00", "2027-12-31T22:00:00").replace(
        "2027-01-19T12:00:00", "2028-01-01T01:00:00"))
    for timezone, zone in (("Europe/Paris", zone_component("Europe/Paris", 2027, 2029)),
                           ("UTC", None)):
        cfg = load_settings(workspace / "config.toml",
                            environ={"CITESMAIL_SCHEDULE_TIMEZONE": timezone})
        campaign = load_campaign(workspace / "campaigns" / "reveillon.md",
                                 default_lang="fr", tz=cfg.tz)
        ics = invitation(campaign, cfg, stamp=datetime(2027, 1, 1, tzinfo=UTC))
        assert ics is not None and ics.count("BEGIN:VTIMEZONE") == (zone is not None)
        assert ics == _as_icalendar_writes_it(ics, zone)


def test_only_events_carry_an_invitation() -> None:
    for slug in (REPLAY, NEWSLETTER):
        campaign = rendered(slug)
        assert campaign.calendar is None
        message = parse(MessageTemplate(campaign, settings()).build(SAMPLE_RECIPIENT))
        assert message.get_content_type() == "multipart/alternative"
        assert not any(part.get_content_type() == "text/calendar" for part in message.walk())


def test_the_message_offers_the_invitation_as_part_and_attachment() -> None:
    campaign = rendered()
    raw = MessageTemplate(campaign, settings()).build(
        Recipient("zoe@example.org", "Zoé", "Durand", "", 7))
    message = parse(raw)
    assert not message.defects and all(not part.defects for part in message.walk())
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.iter_parts()
    kinds = [part.get_content_type() for part in alternative.iter_parts()]
    assert kinds == ["text/plain", "text/html", "text/calendar"]
    inline = list(alternative.iter_parts())[2]
    assert inline.get_param("method") == "PUBLISH"
    assert attachment.get_content_type() == "text/calendar"  # the registered type
    assert attachment.get_param("method") is None  # a file to open, not a second invitation
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == f"{EVENT}.ics"
    assert inline.get_content() == attachment.get_content() == campaign.calendar
    assert message.get_body(("html",)).get_content_type() == "text/html"  # shown, not the ics


def test_the_fast_path_matches_email_message_with_a_calendar() -> None:
    campaign, cfg = rendered(), settings()
    recipient = Recipient("zoe@example.org", "Zoé", "Durand", "Mairie", 7)
    fast = parse(MessageTemplate(campaign, cfg).build(recipient))
    slow = parse(to_bytes(reference_message(campaign, recipient, cfg)))
    assert [p.get_content_type() for p in fast.walk()] == \
        [p.get_content_type() for p in slow.walk()]
    for one, other in zip(fast.walk(), slow.walk(), strict=True):
        if not one.is_multipart():
            assert one.get_content() == other.get_content()
            assert one.get_filename() == other.get_filename()
            assert one.get_param("method") == other.get_param("method")


def test_add_to_calendar_links_in_both_parts() -> None:
    campaign = rendered()
    message = parse(MessageTemplate(campaign, settings()).build(SAMPLE_RECIPIENT))
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    links = {a.get_text(): a["href"] for a in BeautifulSoup(html, "html.parser").find_all("a")}
    google = parse_qs(urlsplit(links["Google Agenda"]).query)
    assert links["Google Agenda"].startswith("https://calendar.google.com/calendar/render?")
    assert google["dates"] == ["20270119T090000Z/20270119T110000Z"]
    assert google["ctz"] == ["Europe/Paris"] and google["location"] == ["En visio-conférence"]
    outlook = parse_qs(urlsplit(links["Outlook.com"]).query)
    assert links["Outlook.com"].startswith("https://outlook.live.com/calendar/")
    assert outlook["startdt"] == ["2027-01-19T09:00:00Z"]
    assert outlook["enddt"] == ["2027-01-19T11:00:00Z"]
    ics_link = links["fichier .ics (Apple, Thunderbird…)"]
    webview = next(href for label, href in links.items() if "navigateur" in label)
    assert ics_link == f"{webview}/event.ics"  # signed per recipient, like the web view
    assert ics_link in text
    # The text part names the services by short links that `serve` redirects: the pages'
    # own addresses are 560 and more characters long.
    assert f"{webview}/google" in text and f"{webview}/outlook" in text
    assert "calendar.google.com" not in text and "outlook.live.com" not in text
    assert all(len(line) <= 78 or line.strip().startswith("https://")
               for line in text.splitlines())


def test_the_short_calendar_links_lead_to_the_pages_the_html_links_to(
        workspace: Path) -> None:
    with_audience(workspace, 1)
    assert run("send", EVENT, "--segment", "partenaires-aura", "--yes").exit_code == 0
    [path] = (workspace / "outbox" / "new").iterdir()
    message = parse(path.read_bytes())
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    links = {a.get_text(): a["href"] for a in BeautifulSoup(html, "html.parser").find_all("a")}
    short = {service: next(line.strip() for line in text.splitlines()
                           if line.strip().endswith(f"/{service}"))
             for service in ("google", "outlook")}
    cfg = load_settings(workspace / "config.toml", environ={})
    db = open_database(cfg.database_url)
    try:
        with TestClient(create_public_app(cfg, db)) as client:
            for service, label in (("google", "Google Agenda"), ("outlook", "Outlook.com")):
                path = "/" + short[service].split("/", 3)[3]
                answer = client.get(path, follow_redirects=False)
                assert answer.status_code == 303
                assert answer.headers["location"] == links[label]
                tampered = client.get(path.replace("/v/", "/v/x"), follow_redirects=False)
                assert tampered.status_code == 400 and "location" not in tampered.headers
            other = client.get(path.rsplit("/", 1)[0] + "/yahoo", follow_redirects=False)
            assert other.status_code == 404 and "location" not in other.headers
    finally:
        db.close()


def test_a_campaign_without_an_event_has_no_calendar_pages(workspace: Path) -> None:
    with_audience(workspace, 1)
    assert run("send", REPLAY, "--yes").exit_code == 0
    [path] = (workspace / "outbox" / "new").iterdir()
    url = str(parse(path.read_bytes())["List-Unsubscribe"]).split(",")[0].strip()[1:-1]
    cfg = load_settings(workspace / "config.toml", environ={})
    db = open_database(cfg.database_url)
    try:
        with TestClient(create_public_app(cfg, db)) as client:
            path = "/" + url.replace("/u/", "/v/").split("/", 3)[3] + "/google"
            answer = client.get(path, follow_redirects=False)
            assert answer.status_code == 404 and "location" not in answer.headers
    finally:
        db.close()


def test_a_send_stores_the_invitation_and_the_web_view_serves_it(workspace: Path) -> None:
    with_audience(workspace, 2)
    sent = run("send", EVENT, "--segment", "partenaires-aura", "--yes")
    assert sent.exit_code == 0, sent.output
    files = sorted((workspace / "outbox" / "new").iterdir())
    messages = [parse(path.read_bytes()) for path in files]
    calendars = [next(p for p in m.walk() if p.get_content_type() == "text/calendar")
                 for m in messages]
    assert len({event_of(c.get_content())["UID"] for c in calendars}) == 1
    cfg = load_settings(workspace / "config.toml", environ={})
    db = open_database(cfg.database_url)
    try:
        with TestClient(create_public_app(cfg, db)) as client:
            html = messages[0].get_body(("html",)).get_content()
            url = next(a["href"] for a in BeautifulSoup(html, "html.parser").find_all("a")
                       if a["href"].endswith("/event.ics"))
            path = "/" + url.split("/", 3)[3]
            answer = client.get(path)
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/calendar")
            assert f'filename="{EVENT}.ics"' in answer.headers["content-disposition"]
            assert answer.text == calendars[0].get_content()  # the stored one, as mailed
            assert client.get(path.replace("/v/", "/v/x")).status_code == 400  # tampered
    finally:
        db.close()


def test_the_web_view_of_a_campaign_without_an_event_has_no_ics(workspace: Path) -> None:
    with_audience(workspace, 1)
    assert run("send", REPLAY, "--yes").exit_code == 0
    [path] = (workspace / "outbox" / "new").iterdir()
    message = parse(path.read_bytes())
    url = str(message["List-Unsubscribe"]).split(",")[0].strip()[1:-1].replace("/u/", "/v/")
    cfg = load_settings(workspace / "config.toml", environ={})
    db = open_database(cfg.database_url)
    try:
        with TestClient(create_public_app(cfg, db)) as client:
            assert client.get("/" + url.split("/", 3)[3] + "/event.ics").status_code == 404
    finally:
        db.close()


def _shift(workspace: Path, slug: str, old: str, new: str) -> None:
    path = workspace / "campaigns" / f"{slug}.md"
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")


def test_a_replay_of_an_event_to_come_is_a_check_error(workspace: Path) -> None:
    _shift(workspace, REPLAY, "starts = 2023-06-12T14:00:00", "starts = 2099-06-12T14:00:00")
    checked = run("check", REPLAY)
    assert checked.exit_code == 1
    line = next(i for i, text in enumerate(
        (workspace / "campaigns" / f"{REPLAY}.md").read_text(encoding="utf-8").splitlines(), 1)
        if text.startswith("starts = 2099"))
    assert (f"campaigns/{REPLAY}.md:{line}: error: this replay's event (2099-06-12 14:00) "
            "is not over yet") in checked.stderr
    with_audience(workspace, 1)
    refused = run("send", REPLAY, "--yes")
    assert refused.exit_code == 1 and "is not over yet" in refused.stderr
    assert not (workspace / "outbox").exists()
    early = run("schedule", REPLAY, "--at", "2099-06-01 09:00")
    assert early.exit_code == 1 and "is not over yet" in early.stderr
    later = run("schedule", REPLAY, "--at", "2099-06-13 09:00")  # after the event: fine
    assert later.exit_code == 0, later.output


def test_an_event_that_is_over_is_a_warning(workspace: Path) -> None:
    _shift(workspace, EVENT, "2027-01-19T", "2025-01-19T")
    checked = run("check", EVENT)
    assert checked.exit_code == 0
    assert "warning: this event (2025-01-19 10:00) is over" in checked.stdout
    _shift(workspace, EVENT, "2025-01-19T", "2099-01-19T")
    _shift(workspace, EVENT, "ends = 2099-01-19T12:00:00\n", "")
    checked = run("check", EVENT)
    assert "is over" not in checked.stdout
    assert "warning: the event has no end: calendars will show one hour" in checked.stdout
    campaign = load_campaign(workspace / "campaigns" / f"{EVENT}.md", default_lang="fr",
                             tz=PARIS)
    event = event_of(invitation(campaign, settings()) or "")
    assert (event.decoded("DTEND") - event.decoded("DTSTART")).total_seconds() == 3600


def test_a_replay_while_its_event_is_still_running_is_an_error() -> None:
    from citesmail.render.lint import timing_problems

    campaign = rendered(REPLAY).campaign
    assert campaign.event is not None and campaign.event.starts is not None
    starts = campaign.event.starts
    during, after = starts + timedelta(minutes=30), starts + timedelta(hours=2)
    assert timing_problems(campaign, now=during)[0]
    assert timing_problems(campaign, now=after) == ([], [])


def test_scheduling_an_invitation_after_its_event_says_so(workspace: Path) -> None:
    with_audience(workspace, 1)
    _shift(workspace, EVENT, "2027-01-19T", "2099-01-19T")
    late = run("schedule", EVENT, "--at", "2099-02-01 09:00", "--segment", "partenaires-aura")
    assert late.exit_code == 0, late.output
    assert "warning: this event (2099-01-19 10:00) is over" in late.stderr
