"""Consent to measurement from the command line: the import column, contacts add, edit
and show, and `tracking purge`."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from citesmail.config import load_settings
from citesmail.db import ClickEvent, Contact, OpenEvent, open_database, utcnow
from tests.conftest import run


def measured(workspace: Path) -> dict[str, bool]:
    db = open_database(load_settings(workspace / "config.toml", environ={}).database_url)
    with db.session(write=False) as session:
        found = {email: flag for email, flag in session.execute(
            select(Contact.email, Contact.measurement_consent))}
    db.close()
    return found


def shown(address: str) -> list[str]:
    return run("contacts", "show", address).stdout.splitlines()


def test_import_reads_the_measurement_column_in_french_or_english(workspace: Path) -> None:
    (workspace / "c.csv").write_text(
        "Courriel;Mesure\na@ex.fr;oui\nb@ex.fr;NON\nc@ex.fr;x\nd@ex.fr;\ne@ex.fr;1\n"
        "f@ex.fr;False\n", encoding="utf-8")
    imported = run("contacts", "import", "c.csv")
    assert imported.exit_code == 0, imported.output
    assert "Mesure" not in imported.stderr  # read, not kept as an attribute
    assert measured(workspace) == {"a@ex.fr": True, "b@ex.fr": False, "c@ex.fr": True,
                                   "d@ex.fr": False, "e@ex.fr": True, "f@ex.fr": False}
    assert "measurement:   yes" in shown("a@ex.fr")
    assert any("measurement_given (c.csv:2)" in line for line in shown("a@ex.fr"))
    assert not any("measurement_" in line for line in shown("b@ex.fr"))  # nothing changed
    # An update withdraws where the file says no, and leaves an empty cell as it was.
    (workspace / "c.csv").write_text("email,measurement\na@ex.fr,no\nc@ex.fr,\n",
                                     encoding="utf-8")
    assert run("contacts", "import", "c.csv").exit_code == 0  # without --update: unchanged
    assert measured(workspace)["a@ex.fr"] is True
    assert run("contacts", "import", "c.csv", "--update").exit_code == 0
    assert measured(workspace)["a@ex.fr"] is False and measured(workspace)["c@ex.fr"] is True
    assert any(line.endswith("measurement_withdrawn (c.csv:2)") for line in shown("a@ex.fr"))


def test_a_bad_measurement_value_stops_the_import_with_file_line_and_column(
        workspace: Path) -> None:
    (workspace / "c.csv").write_text("email;nom;mesure\na@ex.fr;Ann;oui\nb@ex.fr;Bob;peut-être\n",
                                     encoding="utf-8")
    refused = run("contacts", "import", "c.csv")
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        "c.csv:3:3: error: mesure: 'peut-être' is neither yes nor no — write yes or no "
        "(also oui/non, true/false, 1/0, x or empty); nothing was imported"]
    assert measured(workspace) == {}


def test_export_writes_the_measurement_and_imports_back_the_same(workspace: Path) -> None:
    (workspace / "c.csv").write_text("email;mesure\na@ex.fr;oui\nb@ex.fr;non\n",
                                     encoding="utf-8")
    assert run("contacts", "import", "c.csv").exit_code == 0
    for lang, yes, no in (("en", "yes", "no"), ("fr", "oui", "non")):
        out = run("contacts", "export", "--header-lang", lang).stdout
        rows = list(csv.reader(io.StringIO(out), delimiter=";"))
        assert [row[11] for row in rows] == [rows[0][11], yes, no]
    (workspace / "c.csv").write_text(run("contacts", "export").stdout, encoding="utf-8")
    fresh = {"CITESMAIL_DATABASE_URL": f'"sqlite:///{workspace}/fresh.db"'}
    assert run("contacts", "import", "c.csv", env=fresh).exit_code == 0
    again = run("contacts", "export", env=fresh).stdout
    assert [row[11] for row in csv.reader(io.StringIO(again), delimiter=";")][1:] == \
        ["yes", "no"]


def test_contacts_add_and_edit_measurement(workspace: Path) -> None:
    added = run("contacts", "add", "a@ex.fr", "--consent", "Carte remise",
                "--measurement", "yes")
    assert added.exit_code == 0, added.output
    assert "measurement:   yes" in shown("a@ex.fr")
    edited = run("contacts", "edit", "a@ex.fr", "--measurement", "no")
    assert edited.stdout == "a@ex.fr: measurement withdrawn\n"
    again = run("contacts", "edit", "a@ex.fr", "--measurement", "no")
    assert again.stdout == "a@ex.fr: nothing changed\n"
    lines = shown("a@ex.fr")
    assert "measurement:   no" in lines
    assert [line.split(" UTC ")[1] for line in lines if "measurement_" in line] == [
        "measurement_given (command): (no text recorded)", "measurement_withdrawn (command)"]
    refused = run("contacts", "edit", "a@ex.fr", "--measurement", "peut-être")
    assert refused.exit_code == 2


def test_tracking_purge_with_and_without_dry_run(workspace: Path) -> None:
    assert run("contacts", "add", "a@ex.fr", "--consent", "Carte remise").exit_code == 0
    db = open_database(load_settings(workspace / "config.toml", environ={}).database_url)
    with db.session() as session:
        contact_id = session.scalar(select(Contact.id))
        assert contact_id is not None
        for days in (400, 396, 10):
            at = utcnow() - timedelta(days=days)
            session.add(ClickEvent(contact_id=contact_id, campaign="c", number=1,
                                   automated=False, at=at))
            session.add(OpenEvent(contact_id=contact_id, campaign="c", at=at))
    dry = run("tracking", "purge", "--dry-run")
    assert dry.stdout == ("2 clicks and 2 opens would be deleted (older than 395 days, "
                          "[tracking] retention)\n")
    done = run("tracking", "purge", env={"CITESMAIL_TRACKING_RETENTION": "398d"})
    assert done.stdout == ("1 click and 1 open deleted (older than 398 days, "
                           "[tracking] retention)\n")
    with db.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(ClickEvent)) == 2
        assert session.scalar(select(func.count()).select_from(OpenEvent)) == 2
    db.close()
