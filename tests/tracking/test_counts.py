"""Intake lines of clicks, opens and web views applied to SQLite and PostgreSQL: counts
added to what is there, a person's rows only while they agree, old lines still read."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from citesmail.db import ClickCount, ClickEvent, Contact, Database, OpenEvent, WebViewCount
from citesmail.intake import CLICK, OPEN, WEB_VIEW, append, apply_pending, parse


def test_clicks_opens_and_views_are_added_up_per_hour(db: Database, tmp_path: Path) -> None:
    with db.session() as session:
        agreed = Contact(email="a@example.org", email_key="a@example.org",
                         domain="example.org", measurement_consent=True)
        other = Contact(email="b@example.org", email_key="b@example.org",
                        domain="example.org")
        session.add_all([agreed, other])
        session.flush()
        ids = agreed.id, other.id
    intake = tmp_path / "intake"
    for _ in range(2):  # two batches: the second adds to the first's rows
        for _ in range(3):
            append(intake, 0, CLICK, campaign="c1", number=1)
        append(intake, 0, CLICK, campaign="c1", number=1, automated=True)
        append(intake, ids[0], CLICK, campaign="c1", number=2)
        append(intake, ids[1], CLICK, campaign="c1", number=2)  # named, yet never agreed
        append(intake, ids[0], OPEN, campaign="c1")
        append(intake, ids[1], OPEN, campaign="c1")
        append(intake, 0, WEB_VIEW, campaign="c1")
        assert apply_pending(db, intake) == 9
    with db.session(write=False) as session:
        counts = {(n, clicks, automated) for n, clicks, automated in session.execute(
            select(ClickCount.number, ClickCount.clicks, ClickCount.automated))}
        assert counts == {(1, 6, 2), (2, 4, 0)}
        hour = session.scalar(select(ClickCount.hour).limit(1))
        assert hour is not None and hour.minute == hour.second == 0
        assert list(session.scalars(select(ClickEvent.contact_id))) == [ids[0], ids[0]]
        assert list(session.scalars(select(OpenEvent.contact_id))) == [ids[0], ids[0]]
        assert session.scalar(select(func.sum(WebViewCount.views))) == 2


def test_old_intake_lines_are_still_read() -> None:
    when = datetime(2026, 11, 30, 12, tzinfo=UTC)
    old = b"42 unsubscribe %s" % when.isoformat().encode()
    [entry] = parse(b"\n%s %08x\n" % (old, zlib.crc32(old)))
    assert (entry.contact_id, entry.what, entry.campaign) == (42, "unsubscribe", "")
    assert entry.when == when
