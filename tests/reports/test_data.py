"""reports/data.py against a real send over SMTP and what came back from the inbox, on
SQLite and PostgreSQL: every number of the report, counted by hand from the scenario."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from citesmail.db import (
    ClickCount,
    ClickEvent,
    ConsentEvent,
    Delivery,
    TrackedLink,
    WebViewCount,
)
from citesmail.delivery.sendlog import mark_missed
from citesmail.errors import CitesmailError
from citesmail.reports import HourCount, Link, campaign_lines, campaign_report
from tests.conftest import EVENT, NEWSLETTER, REPLAY, run
from tests.reports.conftest import Sent

HOUR = datetime(2026, 3, 2, 9, tzinfo=UTC)


def test_the_delivery_funnel_matches_the_send_and_the_inbox(sent: Sent) -> None:
    report = campaign_report(sent.db, REPLAY)
    assert report.recipients == 11
    assert report.states == {"queued": 0, "sending": 0, "sent": 6, "deferred": 1,
                             "failed": 4, "skipped": 0, "unknown": 0}
    assert (report.delivered, report.deferred, report.unknown, report.skipped) == (6, 1, 0, 0)
    assert report.retried == 1  # 451 once, then accepted
    # refused at send: 550 (address), 554 5.7.1 (spam); bounced later: 5.1.1, 5.7.1
    assert report.failed == {"address": 2, "mailbox_full": 0, "policy": 2, "other": 0}
    assert (report.bounced_hard, report.bounced_soft) == (1, 1)
    assert report.contacts_bounced == 2  # the 550 at send time and the 5.1.1 notification
    assert (report.unsubscribed, report.complaints) == (2, 2)
    assert (report.delivered_percent, report.bounced_percent) == (54.5, 36.4)
    assert report.segment == "partenaires-aura" and report.state == "running"


def test_messages_accepted_per_hour_come_from_the_send_log(sent: Sent) -> None:
    with sent.db.session(write=False) as session:
        times = [at for at in session.scalars(select(Delivery.sent_at)) if at is not None]
    hours: dict[datetime, int] = {}
    for at in times:
        hour = at.replace(minute=0, second=0, microsecond=0)
        hours[hour] = hours.get(hour, 0) + 1
    report = campaign_report(sent.db, REPLAY)
    assert report.accepted_per_hour == [HourCount(h, n) for h, n in sorted(hours.items())]
    assert sum(h.count for h in report.accepted_per_hour) == 8  # bounced later included


def test_without_counted_links_the_campaign_is_not_measured(sent: Sent) -> None:
    report = campaign_report(sent.db, REPLAY)
    assert not report.measured
    assert (report.links, report.clicks_per_hour, report.clicks) == ([], [], 0)
    (line,) = campaign_lines(sent.db)
    assert line.clicks is None


def add_measurements(sent: Sent) -> None:
    """Two counted links, clicks over three hours, some by scanners, a few people who
    agreed to be measured, web-view visits, and an unsubscribe from one list."""
    with sent.db.session() as session:
        session.execute(insert(TrackedLink), [
            {"campaign": REPLAY, "number": 1, "url": "https://example.org/video"},
            {"campaign": REPLAY, "number": 2, "url": "https://example.org/diapositives.pdf"},
            {"campaign": REPLAY, "number": 3, "url": "https://example.org/jamais-cliquee"}])
        session.execute(insert(ClickCount), [
            {"campaign": REPLAY, "number": 1, "hour": HOUR, "clicks": 40, "automated": 6},
            {"campaign": REPLAY, "number": 1, "hour": HOUR + timedelta(hours=1), "clicks": 12,
             "automated": 0},
            {"campaign": REPLAY, "number": 2, "hour": HOUR + timedelta(hours=1), "clicks": 5,
             "automated": 1},
            {"campaign": REPLAY, "number": 2, "hour": HOUR + timedelta(hours=5), "clicks": 1,
             "automated": 0},
            {"campaign": "autre-campagne", "number": 1, "hour": HOUR, "clicks": 99,
             "automated": 0}])
        session.execute(insert(ClickEvent), [
            {"contact_id": 7, "campaign": REPLAY, "number": 1, "automated": False, "at": HOUR},
            {"contact_id": 7, "campaign": REPLAY, "number": 1, "automated": False, "at": HOUR},
            {"contact_id": 6, "campaign": REPLAY, "number": 1, "automated": False, "at": HOUR},
            {"contact_id": 6, "campaign": REPLAY, "number": 2, "automated": True, "at": HOUR}])
        session.execute(insert(WebViewCount), [
            {"campaign": REPLAY, "hour": HOUR, "views": 7},
            {"campaign": REPLAY, "hour": HOUR + timedelta(hours=2), "views": 2}])
        # David, who unsubscribed by mail, had left one list through /p/ first: one person.
        session.execute(insert(ConsentEvent), [
            {"contact_id": 4, "kind": "list_unsubscribe", "source": "preference page",
             "campaign": REPLAY, "at": HOUR}])


def test_links_clicks_and_visits(sent: Sent) -> None:
    add_measurements(sent)
    report = campaign_report(sent.db, REPLAY)
    assert report.measured
    assert report.links == [Link(1, "https://example.org/video", 52, 6, 2),
                            Link(2, "https://example.org/diapositives.pdf", 6, 1, 0),
                            Link(3, "https://example.org/jamais-cliquee", 0, 0, 0)]
    assert (report.clicks, report.automated_clicks) == (58, 7)
    assert report.clicks_per_hour == [HourCount(HOUR, 40),
                                      HourCount(HOUR + timedelta(hours=1), 17),
                                      HourCount(HOUR + timedelta(hours=5), 1)]
    assert report.web_views == 9
    assert report.unsubscribed == 2
    (line,) = campaign_lines(sent.db)
    assert (line.campaign, line.segment, line.recipients, line.delivered, line.failed,
            line.unsubscribed, line.clicks) == (REPLAY, "partenaires-aura", 11, 6, 4, 2, 58)
    assert (line.delivered_percent, line.bounced_percent) == (54.5, 36.4)


def test_people_are_not_counted_when_nobody_was_measured_individually(sent: Sent) -> None:
    add_measurements(sent)
    with sent.db.session() as session:
        session.query(ClickEvent).delete()
    assert [link.people for link in campaign_report(sent.db, REPLAY).links] == [None] * 3


def test_campaigns_not_sent_are_told_apart(sent: Sent, workspace: Path) -> None:
    files = [path.stem for path in (workspace / "campaigns").glob("*.md")]
    scheduled = run("schedule", NEWSLETTER, "--at", "2030-01-15 09:00", "--tz", "UTC",
                    "--segment", "partenaires-aura", env=sent.env)
    assert scheduled.exit_code == 0, scheduled.output
    with pytest.raises(CitesmailError) as error:
        campaign_report(sent.db, NEWSLETTER, files=files)
    assert str(error.value) == (
        f"campaign '{NEWSLETTER}' has not been sent yet: it is scheduled for 2030-01-15 09:00 "
        "UTC — its report starts when its send does; see: citesmail schedules")
    mark_missed(sent.db, NEWSLETTER)
    with pytest.raises(CitesmailError, match=f"'{NEWSLETTER}' was never sent: its time "):
        campaign_report(sent.db, NEWSLETTER, files=files)
    with pytest.raises(CitesmailError) as error:
        campaign_report(sent.db, EVENT, files=files)
    assert str(error.value) == (f"campaign '{EVENT}' has not been sent: it is only a "
                                f"file — send it with: citesmail send {EVENT}")
    with pytest.raises(CitesmailError) as error:
        campaign_report(sent.db, "2023-06-12-replay-cite", files=files)
    assert str(error.value).startswith(
        f"unknown campaign '2023-06-12-replay-cite' — did you mean '{REPLAY}'? "
        f"(known campaigns: {REPLAY}, ")
    assert [line.campaign for line in campaign_lines(sent.db)] == [REPLAY]
