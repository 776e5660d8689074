"""Consent history and pending contacts, against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from citesmail.audience import consent
from citesmail.audience.contacts import erase, unsubscribe
from citesmail.audience.exporter import export_contacts
from citesmail.audience.importer import import_contacts
from citesmail.audience.lists import add_list, list_summaries
from citesmail.audience.pending import purge_pending
from citesmail.audience.recipients import active_addresses, recipients
from citesmail.audience.segments import Definition, count, left_out, steps
from citesmail.audience.status import leave
from citesmail.db import ConsentEvent, ConsentText, Contact, Database, Membership, utcnow
from citesmail.intake import append, apply_pending
from citesmail.states import ConsentKind, ContactStatus


def imported(db: Database, tmp_path: Path, text: str = "email;prénom\na@ex.fr;Anne\n"
             "b@ex.fr;Bruno\nc@ex.fr;Chloé\n", **options: str) -> dict[str, int]:
    path = tmp_path / "c.csv"
    path.write_text(text, encoding="utf-8")
    import_contacts(db, path, **options)  # type: ignore[arg-type]
    with db.session(write=False) as session:
        return {email: cid for email, cid in session.execute(select(Contact.email, Contact.id))}


def history(db: Database, contact_id: int) -> list[tuple[str, str, str | None, str | None]]:
    with db.session(write=False) as session:
        return [(e.kind, e.source, e.list_name, e.text)
                for e in consent.history(session, contact_id)]


def test_each_import_row_records_its_file_line_and_the_text_stored_once(
        db: Database, tmp_path: Path) -> None:
    with db.session() as session:
        add_list(session, "lettre", "La lettre", "La lettre mensuelle du centre")
    ids = imported(db, tmp_path, list_name="lettre")
    assert history(db, ids["b@ex.fr"]) == [
        ("import", "c.csv:3", "lettre", "La lettre mensuelle du centre")]
    # Again with a text of its own: the rows already there get an event too.
    ids = imported(db, tmp_path, "email\nb@ex.fr\nd@ex.fr\n",
                   consent="Inscrits au séminaire du 12 juin")
    assert history(db, ids["b@ex.fr"])[1:] == [
        ("import", "c.csv:2", None, "Inscrits au séminaire du 12 juin")]
    assert history(db, ids["d@ex.fr"]) == [
        ("import", "c.csv:3", None, "Inscrits au séminaire du 12 juin")]
    imported(db, tmp_path, "email\ne@ex.fr\n")  # no list, no text: "import"
    with db.session(write=False) as session:
        texts = session.scalars(select(ConsentText.text).order_by(ConsentText.text)).all()
        events = session.scalar(select(func.count()).select_from(ConsentEvent))
    assert texts == ["Inscrits au séminaire du 12 juin", "La lettre mensuelle du centre",
                     "import"]
    assert events == 6


def test_a_dry_run_records_nothing(db: Database, tmp_path: Path) -> None:
    imported(db, tmp_path, dry_run=True)  # type: ignore[arg-type]
    with db.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 0


def test_leaving_records_one_event_once_whoever_calls(db: Database, tmp_path: Path) -> None:
    ids = imported(db, tmp_path)
    a, b, c = ids["a@ex.fr"], ids["b@ex.fr"], ids["c@ex.fr"]
    with db.session() as session:
        assert leave(session, [a, b], ContactStatus.BOUNCED, source="send x: 550 no") == 2
    with db.session() as session:  # b has left already: neither changed nor recorded
        assert leave(session, [b, c], ContactStatus.UNSUBSCRIBED, source="command") == 1
        assert unsubscribe(session, ("a@ex.fr",)) == [("a@ex.fr", "bounced")]
    assert [e[:2] for e in history(db, a)] == [("import", "c.csv:2"),
                                               ("bounce", "send x: 550 no")]
    assert [e[:2] for e in history(db, b)] == [("import", "c.csv:3"),
                                               ("bounce", "send x: 550 no")]
    assert [e[:2] for e in history(db, c)] == [("import", "c.csv:4"),
                                               ("unsubscribe", "command")]
    assert history(db, c)[1][3] is None  # leaving shows no text


def test_an_unsubscribe_through_serve_is_recorded_at_the_time_it_was_answered(
        db: Database, tmp_path: Path) -> None:
    ids = imported(db, tmp_path)
    intake = tmp_path / "intake"
    before = utcnow()
    append(intake, ids["a@ex.fr"])
    append(intake, ids["a@ex.fr"])  # clicked twice
    applied = utcnow()
    assert apply_pending(db, intake) == 2
    with db.session(write=False) as session:
        events = consent.history(session, ids["a@ex.fr"])
    assert [(e.kind, e.source) for e in events] == [
        ("import", "c.csv:2"), ("unsubscribe", "serve: unsubscribe link")]
    assert before <= events[1].at <= applied
    append(intake, ids["a@ex.fr"])  # applying again changes nothing
    apply_pending(db, intake)
    assert len(history(db, ids["a@ex.fr"])) == 2


def test_pending_contacts_are_never_mailed_nor_counted(db: Database, tmp_path: Path) -> None:
    with db.session() as session:
        add_list(session, "lettre")
    ids = imported(db, tmp_path, list_name="lettre")
    with db.session() as session:
        session.get_one(Contact, ids["b@ex.fr"]).status = ContactStatus.PENDING
    definition = Definition(lists=["lettre"])
    with db.session(write=False) as session:
        assert count(session, definition) == 2
        assert steps(session, definition)[-1] == ("on lettre", 2)
        assert left_out(session, definition) == {"pending": 1}
        mailed = [r.email for batch in recipients(session, definition) for r in batch]
        assert mailed == ["a@ex.fr", "c@ex.fr"]
        assert active_addresses(session, 10) == ["a@ex.fr", "c@ex.fr"]
        [summary] = list_summaries(session)
        assert (summary.members, summary.active) == (3, 2)
    with db.session() as session:  # a pending contact can still leave (a bounce)
        assert leave(session, [ids["b@ex.fr"]], ContactStatus.BOUNCED) == 1


def test_pending_contacts_are_purged_after_the_days_with_their_events(
        db: Database, tmp_path: Path) -> None:
    with db.session() as session:
        add_list(session, "lettre")
    ids = imported(db, tmp_path, list_name="lettre")
    now = utcnow()
    with db.session() as session:
        for email, age in (("a@ex.fr", 8), ("b@ex.fr", 6)):
            contact = session.get_one(Contact, ids[email])
            contact.status, contact.updated_at = ContactStatus.PENDING, now - timedelta(days=age)
        old_active = session.get_one(Contact, ids["c@ex.fr"])
        old_active.updated_at = now - timedelta(days=30)
    with db.session() as session:
        assert purge_pending(session, 7) == 1
    with db.session(write=False) as session:
        assert set(session.scalars(select(Contact.email))) == {"b@ex.fr", "c@ex.fr"}
        assert session.scalar(select(func.count()).select_from(ConsentEvent)
                              .where(ConsentEvent.contact_id == ids["a@ex.fr"])) == 0
        assert session.scalar(select(func.count()).select_from(Membership)) == 2
    with db.session() as session:
        assert purge_pending(session, 7, now=now + timedelta(days=2)) == 1
        assert purge_pending(session, 7, now=now + timedelta(days=2)) == 0


def test_erasure_removes_the_events_and_keeps_the_texts(db: Database, tmp_path: Path) -> None:
    ids = imported(db, tmp_path, consent="Texte du formulaire papier")
    with db.session() as session:
        leave(session, [ids["a@ex.fr"]], ContactStatus.COMPLAINED, source="arf")
        erase(session, ("a@ex.fr",))
    with db.session(write=False) as session:
        left = session.scalars(select(ConsentEvent.contact_id)).all()
        texts = session.scalars(select(ConsentText.text)).all()
    assert sorted(left) == [ids["b@ex.fr"], ids["c@ex.fr"]]
    assert texts == ["Texte du formulaire papier"]


def test_export_gives_the_latest_consent_given_not_a_withdrawal(
        db: Database, tmp_path: Path) -> None:
    ids = imported(db, tmp_path)
    imported(db, tmp_path, "email\nb@ex.fr\n")
    with db.session() as session:
        leave(session, [ids["c@ex.fr"]], ContactStatus.UNSUBSCRIBED, source="command")
        consent.record(session, [ids["a@ex.fr"]], ConsentKind.MANUAL, "command", text="oral")
    out = io.StringIO()
    with db.session(write=False) as session:
        export_contacts(session, out)
        stamps = {email: [e.at for e in consent.history(session, cid)]
                  for email, cid in ids.items()}
    rows = [line.split(";") for line in out.getvalue().splitlines()]
    assert rows[0][9:] == ["consent_source", "consent_at", "measurement"]
    found = {row[0]: row[9:11] for row in rows[1:]}
    assert found == {
        "a@ex.fr": ["manual command", stamps["a@ex.fr"][1].isoformat(timespec="seconds")],
        "b@ex.fr": ["import c.csv:2", stamps["b@ex.fr"][1].isoformat(timespec="seconds")],
        "c@ex.fr": ["import c.csv:4", stamps["c@ex.fr"][0].isoformat(timespec="seconds")]}
