"""Consent to measurement and the retention of a person's clicks and opens, against real
SQLite and PostgreSQL databases."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from citesmail.audience import consent
from citesmail.audience.contacts import erase
from citesmail.audience.measurement import Wish, ask, asked, confirm_asked, set_consent
from citesmail.audience.retention import purge_measured
from citesmail.db import (
    ClickCount,
    ClickEvent,
    Contact,
    Database,
    OpenEvent,
    WebViewCount,
    utcnow,
)
from citesmail.states import ConsentKind
from tests.audience.test_consent import imported

TEXT = "J'accepte que mes clics soient enregistrés."


def flags(db: Database) -> dict[str, bool]:
    with db.session(write=False) as session:
        return {email: flag for email, flag in session.execute(
            select(Contact.email, Contact.measurement_consent))}


def kinds(db: Database, contact_id: int) -> list[tuple[str, str, str | None]]:
    with db.session(write=False) as session:
        return [(e.kind, e.source, e.text) for e in consent.history(session, contact_id)
                if e.kind.startswith("measurement")]


def add_events(db: Database, contact_id: int, at: datetime, clicks: int = 1,
               opens: int = 1) -> None:
    with db.session() as session:
        session.add_all([ClickEvent(contact_id=contact_id, campaign="lettre", number=1,
                                    automated=False, at=at) for _ in range(clicks)])
        session.add_all([OpenEvent(contact_id=contact_id, campaign="lettre", at=at)
                         for _ in range(opens)])


def personal(db: Database) -> dict[int, tuple[int, int]]:
    """Clicks and opens recorded per contact id."""
    with db.session(write=False) as session:
        clicks = dict(session.execute(select(ClickEvent.contact_id, func.count())
                                      .group_by(ClickEvent.contact_id)).all())
        opens = dict(session.execute(select(OpenEvent.contact_id, func.count())
                                     .group_by(OpenEvent.contact_id)).all())
    return {cid: (clicks.get(cid, 0), opens.get(cid, 0)) for cid in {*clicks, *opens}}


def test_set_consent_records_each_change_once(db: Database, tmp_path: Path) -> None:
    ids = imported(db, tmp_path)
    a, b = ids["a@ex.fr"], ids["b@ex.fr"]
    with db.session() as session:
        assert set_consent(session, [Wish(a, True, "command"), Wish(b, False, "command")],
                           text=TEXT) == 1  # b had not agreed: nothing changes for b
    assert flags(db) == {"a@ex.fr": True, "b@ex.fr": False, "c@ex.fr": False}
    assert kinds(db, a) == [("measurement_given", "command", TEXT)]
    assert kinds(db, b) == []
    with db.session() as session:  # the same again: no event
        assert set_consent(session, [Wish(a, True, "form")], text=TEXT) == 0
    assert len(kinds(db, a)) == 1


def test_withdrawing_deletes_that_persons_clicks_and_opens_at_once(
        db: Database, tmp_path: Path) -> None:
    ids = imported(db, tmp_path)
    a, b = ids["a@ex.fr"], ids["b@ex.fr"]
    with db.session() as session:
        set_consent(session, [Wish(a, True, "command"), Wish(b, True, "command")])
    add_events(db, a, utcnow(), clicks=3, opens=2)
    add_events(db, b, utcnow())
    with db.session() as session:
        session.add(ClickCount(campaign="lettre", number=1, hour=utcnow().replace(
            minute=0, second=0, microsecond=0), clicks=4, automated=0))
    with db.session() as session:
        assert set_consent(session, [Wish(a, False, "serve: preference page")],
                           text=TEXT) == 1
    assert personal(db) == {b: (1, 1)}
    assert flags(db)["a@ex.fr"] is False
    assert kinds(db, a)[-1] == ("measurement_withdrawn", "serve: preference page", TEXT)
    with db.session(write=False) as session:  # the count per link names nobody: it stays
        assert session.scalar(select(ClickCount.clicks)) == 4


def test_a_box_ticked_at_sign_up_is_given_at_confirmation_only_if_the_latest_form_said_so(
        db: Database, tmp_path: Path) -> None:
    ids = imported(db, tmp_path)
    a, b = ids["a@ex.fr"], ids["b@ex.fr"]
    now = utcnow()
    with db.session() as session:
        ask(session, a, "form /s/actu", TEXT, now)
        ask(session, b, "form /s/actu", TEXT, now)
        # b signs up again a minute later without ticking it
        consent.record(session, [b], ConsentKind.FORM_SIGNUP, "form /s/actu", text="x",
                       at=now + timedelta(minutes=1))
    assert flags(db)["a@ex.fr"] is False  # asked is not given
    with db.session() as session:
        assert asked(session, a) == TEXT and asked(session, b) is None
        assert confirm_asked(session, a, "confirmation link", now) is True
        assert confirm_asked(session, b, "confirmation link", now) is False
    assert flags(db) == {"a@ex.fr": True, "b@ex.fr": False, "c@ex.fr": False}
    assert kinds(db, a) == [("measurement_asked", "form /s/actu", TEXT),
                            ("measurement_given", "confirmation link", TEXT)]
    with db.session() as session:  # withdrawn later: an old ask does not come back
        set_consent(session, [Wish(a, False, "command")])
        assert confirm_asked(session, a, "confirmation link", utcnow()) is False


def test_purge_deletes_only_older_personal_rows_and_keeps_the_counts(
        db: Database, tmp_path: Path) -> None:
    ids = imported(db, tmp_path)
    a, b = ids["a@ex.fr"], ids["b@ex.fr"]
    now = utcnow()
    old, recent = now - timedelta(days=396), now - timedelta(days=394)
    add_events(db, a, old, clicks=2, opens=1)
    add_events(db, a, recent, clicks=1, opens=1)
    add_events(db, b, old, clicks=0, opens=3)
    hour = old.replace(minute=0, second=0, microsecond=0)
    with db.session() as session:
        session.add(ClickCount(campaign="lettre", number=1, hour=hour, clicks=5, automated=1))
        session.add(WebViewCount(campaign="lettre", hour=hour, views=7))
    retention = timedelta(days=395)
    with db.session() as session:
        counted = purge_measured(session, retention, now=now, dry_run=True)
    assert (counted.clicks, counted.opens) == (2, 4)
    assert personal(db) == {a: (3, 2), b: (0, 3)}  # a dry run deletes nothing
    with db.session() as session:
        purged = purge_measured(session, retention, now=now)
    assert (purged.clicks, purged.opens) == (2, 4)
    assert purged.summary() == "2 clicks and 4 opens deleted"
    assert personal(db) == {a: (1, 1)}
    with db.session(write=False) as session:
        assert session.scalar(select(ClickCount.clicks)) == 5
        assert session.scalar(select(WebViewCount.views)) == 7


def test_erasing_a_contact_deletes_their_clicks_and_opens(db: Database,
                                                         tmp_path: Path) -> None:
    ids = imported(db, tmp_path)
    add_events(db, ids["a@ex.fr"], utcnow(), clicks=2, opens=2)
    add_events(db, ids["b@ex.fr"], utcnow())
    with db.session() as session:
        erase(session, ("a@ex.fr",))
    assert personal(db) == {ids["b@ex.fr"]: (1, 1)}
