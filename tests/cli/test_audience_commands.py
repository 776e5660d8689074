"""The audience commands end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from citesmail.db import Contact, Suppression, open_database
from tests.conftest import run


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    return {"CITESMAIL_DATABASE_URL": f'"{db_url}"'}


def ok(*args: str, env: dict[str, str]) -> str:
    result = run(*args, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_import_list_show_unsubscribe_delete(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text(
        "Courriel;Prénom;Nom;Structure;Commune;Secteur\n"
        "anne@lyon.fr;Anne;Martin;Ville de Lyon;Lyon;=1+1\n"
        "bob@lyon.fr;Bob;Durand;Mission locale;Lyon;-2\n"
        "bad;X;Y;;;\n", encoding="utf-8")
    ok("lists", "add", "partenaires", "--title", "Partenaires", env=env)
    result = run("contacts", "import", "c.csv", "--list", "partenaires", env=env)
    assert result.exit_code == 0
    assert result.stdout.strip() == "2 imported, 0 updated, 1 rejected, 0 duplicates"
    assert "c.csv: line 4: rejected: bad: " in result.stderr
    assert "partenaires" in ok("lists", env=env) and "2 contacts" in ok("lists", env=env)
    shown = ok("contacts", "show", "ANNE@lyon.fr", env=env)
    assert "first_name:    Anne" in shown and "lists:         partenaires" in shown
    assert "attr.Secteur:  =1+1" in shown
    assert "unsubscribed" in ok("contacts", "unsubscribe", "anne@lyon.fr", env=env)
    missing = run("contacts", "unsubscribe", "bob@lyon.fr", "nobody@lyon.fr", env=env)
    assert missing.exit_code == 1
    assert "no contact with address nobody@lyon.fr — nothing was changed" in missing.stderr
    assert "status:        active" in ok("contacts", "show", "bob@lyon.fr", env=env)
    unasked = run("contacts", "delete", "bob@lyon.fr", env=env)  # no terminal to answer
    assert unasked.exit_code == 1 and "add --yes to erase" in unasked.stderr
    ok("contacts", "delete", "--yes", "bob@lyon.fr", env=env)
    gone = run("contacts", "show", "bob@lyon.fr", env=env)
    assert gone.exit_code == 1
    assert gone.stderr.strip() == ("error: no contact with address bob@lyon.fr — check the "
                                   "spelling; citesmail contacts list shows them all")
    again = run("contacts", "import", "c.csv", "--update", env=env)
    assert "c.csv: line 3: skipped: bob@lyon.fr was erased (suppression list)" in again.stderr
    assert "1 erased address skipped" in again.stdout
    assert "status:        unsubscribed" in ok("contacts", "show", "anne@lyon.fr", env=env)


def test_erasure_keeps_only_a_hash(env: dict[str, str], tmp_path: Path,
                                   db_url: str) -> None:
    (tmp_path / "c.csv").write_text("email;nom\nzoe@ex.fr;Durand\n", encoding="utf-8")
    ok("contacts", "import", "c.csv", env=env)
    ok("contacts", "delete", "--yes", "Zoe@EX.fr", env=env)
    db = open_database(db_url)
    with db.session() as session:
        assert session.scalars(select(Contact)).all() == []
        [suppression] = session.scalars(select(Suppression)).all()
        assert "zoe" not in suppression.address_hash and len(suppression.address_hash) == 64
    db.close()


def test_export_is_excel_friendly_and_formula_safe(env: dict[str, str],
                                                   tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text(
        "email;prénom;nom;ville;secteur;note\n"
        "a@ex.fr;Élodie;=HYPERLINK(\"x\");Lyon;emploi;+33 6\n"
        "b@ex.fr;@bob;-Durand;Vénissieux;;\n", encoding="utf-8")
    ok("lists", "add", "l", env=env)
    ok("contacts", "import", "c.csv", "--list", "l", env=env)
    ok("contacts", "export", "-o", "out.csv", env=env)
    raw = (tmp_path / "out.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == ["email", "first_name", "last_name", "organization", "role", "territory",
                       "lang", "status", "lists", "consent_source", "consent_at", "measurement",
                       "secteur", "note"]
    assert rows[1][:10] == ["a@ex.fr", "Élodie", "'=HYPERLINK(\"x\")", "", "", "Lyon", "",
                            "active", "l", "import c.csv:2"]
    assert datetime.fromisoformat(rows[1][10]).tzinfo == UTC
    assert rows[1][11:] == ["no", "emploi", "'+33 6"]
    assert rows[2][:3] == ["b@ex.fr", "'@bob", "'-Durand"]
    tabbed = ok("contacts", "export", "--delimiter", "tab", "--list", "l", env=env)
    assert tabbed.lstrip("\ufeff").startswith("email\tfirst_name\t")
    both = run("contacts", "export", "--list", "l", "--segment", "s", env=env)
    assert both.exit_code == 2


def test_formula_headers_are_exported_safe_and_import_back_the_same(
        env: dict[str, str], tmp_path: Path, db_url: str) -> None:
    # The tab before =1 is trimmed at import: what is left is a formula all the same.
    (tmp_path / "c.csv").write_text(
        'email;=2+5;+cmd;-x;@SUM(A1);"\t=1";note\n'
        "a@ex.fr;7;c;x;s;1;=HYPERLINK(\"x\")\n", encoding="utf-8")
    imported = run("contacts", "import", "c.csv", env=env)
    assert imported.exit_code == 0
    assert "c.csv: line 1: warning: column '=2+5' looks like a spreadsheet formula; kept " \
           "as an attribute, exported as ''=2+5'" in imported.stderr
    assert imported.stderr.count("warning") == 5  # not for email or note
    ok("contacts", "export", "-o", "out.csv", env=env)
    rows = list(csv.reader(io.StringIO((tmp_path / "out.csv").read_text("utf-8-sig")),
                           delimiter=";"))
    assert rows[0][12:] == ["'=2+5", "'+cmd", "'-x", "'@SUM(A1)", "'=1", "note"]
    assert rows[1][12:] == ["7", "c", "x", "s", "1", "'=HYPERLINK(\"x\")"]
    # The export's apostrophes are taken off again: same names, same values.
    again = run("contacts", "import", "out.csv", "--update", env=env)
    assert again.stdout.strip() == "0 imported, 1 updated, 0 rejected, 0 duplicates"
    assert "out.csv: column 'status' ignored: an import never changes a status" \
           in again.stderr
    assert "out.csv: column 'consent_at' ignored: an import records its own consent " \
           "(give the text with --consent)" in again.stderr
    db = open_database(db_url)
    with db.session() as session:
        [contact] = session.scalars(select(Contact)).all()
    db.close()
    assert contact.attributes == {"=2+5": "7", "+cmd": "c", "-x": "x", "@SUM(A1)": "s",
                                  "=1": "1", "note": '=HYPERLINK("x")'}


def test_list_title_and_description_longer_than_their_column(env: dict[str, str]) -> None:
    too_long = run("lists", "add", "l", "--title", "t" * 256, env=env)
    assert too_long.exit_code == 1
    assert too_long.stderr.splitlines() == [
        "error: list title of 256 characters, at most 255 — shorten the --title"]
    described = run("lists", "add", "l", "--description", "d" * 2001, env=env)
    assert described.stderr.splitlines() == [
        "error: list description of 2001 characters, at most 2000 — shorten the --description"]
    assert "no lists yet" in run("lists", env=env).stderr
    ok("lists", "add", "l", "--title", "t" * 255, "--description", "d" * 2000, env=env)
    assert "t" * 255 in ok("lists", env=env)


def test_segments_commands(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("email;ville;fonction\na@ex.fr;Lyon;DP\nb@ex.fr;Lyon;CM\n"
                                    "c@ex.fr;Paris;DP\n", encoding="utf-8")
    ok("lists", "add", "l", env=env)
    ok("contacts", "import", "c.csv", "--list", "l", env=env)
    added = ok("segments", "add", "dp-lyon", "--list", "l", "--where", "territory=Lyon",
               "--where", "role=DP", env=env)
    assert "(1 contacts now)" in added
    assert "dp-lyon" in ok("segments", "list", env=env)
    shown = ok("segments", "show", "dp-lyon", env=env)
    assert "1 contacts" in shown and "a@ex.fr" in shown and "b@ex.fr" not in shown
    listed = ok("contacts", "list", "--segment", "dp-lyon", env=env)
    assert "a@ex.fr" in listed and "c@ex.fr" not in listed
    unknown = run("segments", "add", "x", "--where", "ville=Lyon", env=env)
    assert unknown.exit_code == 1
    assert "known fields: role, lang, domain, territory, organization" in unknown.stderr
    bad_list = run("segments", "add", "x", "--list", "nope", env=env)
    assert bad_list.exit_code == 1 and "unknown list 'nope'" in bad_list.stderr
    ok("segments", "remove", "dp-lyon", env=env)
    assert "dp-lyon" not in ok("segments", "list", env=env)


def test_database_file_that_is_not_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          ) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "citesmail.db").write_text("these are my notes, not a database\n" * 100)
    result = run("lists")
    assert result.exit_code == 1
    assert "citesmail.db is not a SQLite database" in result.stderr
    assert "Traceback" not in result.output


def test_locked_database_waits_then_says_so(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("lists", "add", "l").exit_code == 0
    (tmp_path / "c.csv").write_text("email\na@ex.fr\n", encoding="utf-8")
    holder = sqlite3.connect(tmp_path / "citesmail.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        result = run("contacts", "import", "c.csv",
                     env={"CITESMAIL_DATABASE_BUSY_TIMEOUT": '"1s"'})
        waited = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 1
    assert "is locked by another process" in result.stderr
    assert waited >= 0.9
    assert run("contacts", "import", "c.csv").exit_code == 0


def test_check_warns_when_the_audience_is_not_a_segment(env: dict[str, str],
                                                         workspace: Path) -> None:
    ok("lists", "add", "l", env=env)  # the database now exists
    result = run("check", "2023-06-12-replay-cites-de-l-emploi", env=env)
    assert result.exit_code == 0
    assert "audience: unknown segment 'partenaires-aura'" in result.stdout
    ok("segments", "add", "partenaires-aura", "--list", "l", env=env)
    result = run("check", "2023-06-12-replay-cites-de-l-emploi", env=env)
    assert "audience" not in result.stdout


def test_unsubscribe_says_what_it_changed(env: dict[str, str], tmp_path: Path) -> None:
    """An active contact is reported `unsubscribed`, one already out `already ...`."""
    (tmp_path / "c.csv").write_text("email\nanne@lyon.fr\nbob@lyon.fr\n", encoding="utf-8")
    ok("contacts", "import", "c.csv", env=env)
    assert ok("contacts", "unsubscribe", "anne@lyon.fr", env=env) == "anne@lyon.fr: unsubscribed\n"
    both = ok("contacts", "unsubscribe", "anne@lyon.fr", "bob@lyon.fr", env=env)
    assert both.splitlines() == ["anne@lyon.fr: already unsubscribed", "bob@lyon.fr: unsubscribed"]


FRENCH = ("Courriel;Prénom;Nom;Structure;Fonction;Ville;Téléphone;;status\n"
          "anne@lyon.fr;Anne;Martin-Dupré;Direction départementale de l'emploi;"
          "Délégué du préfet;Lyon;04 72 00 00 00;x;active\n"
          "bob@grenoble.fr;Bob;Durand;Mission locale;Chargé de mission;Grenoble;;;\n")


def test_equal_ignores_case_and_accents_and_empty_segments_say_why(
        env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text(FRENCH, encoding="utf-8")
    ok("lists", "add", "aura", env=env)
    ok("contacts", "import", "c.csv", "--list", "aura", env=env)
    added = run("segments", "add", "dp", "--where", "role=délégué du préfet", env=env)
    assert "(1 contacts now)" in added.stdout and added.stderr == ""
    exact = run("segments", "add", "dp-exact", "--list", "aura", "--where",
                "role==délégué du préfet", env=env)
    assert exact.exit_code == 0 and "(0 contacts now)" in exact.stdout
    assert exact.stderr == ("warning: segment dp-exact matches no contact now: "
                            "role==délégué du préfet removes everyone (2 before it) "
                            "(citesmail segments show dp-exact)\n")
    shown = ok("segments", "show", "dp-exact", env=env)
    assert shown.splitlines() == [
        "dp-exact: on aura, role==délégué du préfet", "0 contacts",
        "  active contacts: 2", "  on aura: 2 (drops 0)",
        "  role==délégué du préfet: 0 (drops 2)  ← no contact matches this"]
    assert "  role=délégué du préfet: 1 (drops 1)\n  anne@lyon.fr" in ok(
        "segments", "show", "dp", env=env)
    ok("contacts", "unsubscribe", "anne@lyon.fr", "bob@grenoble.fr", env=env)
    nobody = run("segments", "add", "all", env=env)
    assert "matches no contact now: there is no active contact" in nobody.stderr


def test_contacts_list_fits_the_terminal_and_searches(env: dict[str, str],
                                                      tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text(FRENCH, encoding="utf-8")
    ok("contacts", "import", "c.csv", env=env)
    narrow = run("contacts", "list", env={**env, "COLUMNS": "60"})
    lines = narrow.stdout.splitlines()
    assert lines[0].split() == ["email", "name", "organiza…", "role", "territory", "status"]
    assert all(len(line) <= 60 for line in lines) and len(lines) == 3
    assert "Directio…" in lines[1] and "Délégué …" in lines[1]  # role: what segments filter on
    assert lines[2].startswith("bob@gre…")
    assert narrow.stderr == "2 contacts\n"
    wide = ok("contacts", "list", env={**env, "COLUMNS": "200"})
    assert "Anne Martin-Dupré" in wide and "Direction départementale de l'emploi" in wide
    assert "Délégué du préfet" in wide
    assert "…" not in wide
    piped = ok("contacts", "list", env=env).splitlines()  # not a terminal: 100 columns
    assert max(len(line) for line in piped) <= 100
    found = ok("contacts", "list", "--search", "DUPRE", env=env).splitlines()
    assert len(found) == 2 and found[1].startswith("anne@lyon.fr")
    assert len(ok("contacts", "list", "--search", "mission LOCALE", env=env).splitlines()) == 2
    assert len(ok("contacts", "list", "--search", "grenoble.fr", env=env).splitlines()) == 2
    assert len(ok("contacts", "list", "--search", "%", env=env).splitlines()) == 1


def test_contacts_list_as_csv_and_json_keeps_values_whole(env: dict[str, str],
                                                          tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text(FRENCH, encoding="utf-8")
    ok("contacts", "import", "c.csv", env=env)
    rows = list(csv.reader(io.StringIO(ok("contacts", "list", "--format", "csv",
                                          env={**env, "COLUMNS": "40"}))))
    assert rows[0] == ["email", "first_name", "last_name", "organization", "role",
                       "territory", "status"]
    assert rows[1] == ["anne@lyon.fr", "Anne", "Martin-Dupré",
                       "Direction départementale de l'emploi", "Délégué du préfet", "Lyon",
                       "active"]
    listed = json.loads(ok("contacts", "list", "--format", "json", "--search", "bob",
                           env={**env, "COLUMNS": "40"}))
    assert listed == [{"email": "bob@grenoble.fr", "first_name": "Bob",
                       "last_name": "Durand", "organization": "Mission locale",
                       "role": "Chargé de mission", "territory": "Grenoble",
                       "status": "active"}]
    assert json.loads(ok("contacts", "list", "--format", "json", "--search", "zzz",
                         env=env)) == []


def test_import_says_what_became_of_the_other_columns(env: dict[str, str],
                                                      tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text(FRENCH, encoding="utf-8")
    result = run("contacts", "import", "c.csv", env=env)
    assert result.stderr.splitlines() == [
        "c.csv: column 'Téléphone' → attribute 'Téléphone'",
        "c.csv: column 8 ignored: it has no header",
        "c.csv: column 'status' ignored: an import never changes a status"]
    assert result.stdout == "2 imported, 0 updated, 0 rejected, 0 duplicates\n"


def test_export_with_french_headers_imports_back_the_same(
        env: dict[str, str], tmp_path: Path, db_url: str) -> None:
    (tmp_path / "c.csv").write_text(FRENCH, encoding="utf-8")
    ok("lists", "add", "aura", env=env)
    ok("contacts", "import", "c.csv", "--list", "aura", env=env)
    ok("contacts", "export", "--header-lang", "fr", "-o", "fr.csv", env=env)
    rows = list(csv.reader(io.StringIO((tmp_path / "fr.csv").read_text("utf-8-sig")),
                           delimiter=";"))
    assert rows[0] == ["Courriel", "Prénom", "Nom", "Structure", "Fonction", "Territoire",
                       "Langue", "Statut", "Listes", "Source du consentement",
                       "Date du consentement", "Mesure", "Téléphone"]
    fresh = {"CITESMAIL_DATABASE_URL": f'"sqlite:///{tmp_path}/fresh.db"'}
    again = run("contacts", "import", "fr.csv", env=fresh)
    assert again.stdout == "2 imported, 0 updated, 0 rejected, 0 duplicates\n"
    assert again.stderr.splitlines() == [
        "fr.csv: column 'Téléphone' → attribute 'Téléphone'",
        "fr.csv: column 'Statut' ignored: an import never changes a status",
        "fr.csv: column 'Listes' ignored: give the list with --list",
        "fr.csv: column 'Source du consentement' ignored: an import records its own consent "
        "(give the text with --consent)",
        "fr.csv: column 'Date du consentement' ignored: an import records its own consent "
        "(give the text with --consent)"]
    ok("contacts", "export", "-o", "first.csv", env=env)
    ok("contacts", "export", "-o", "second.csv", env=fresh)

    def read(name: str) -> list[list[str]]:
        return list(csv.reader(io.StringIO((tmp_path / name).read_text("utf-8-sig")),
                               delimiter=";"))

    first, second = read("first.csv"), read("second.csv")
    assert [row[9] for row in first[1:]] == ["import c.csv:2", "import c.csv:3"]
    assert [row[9] for row in second[1:]] == ["import fr.csv:2", "import fr.csv:3"]
    # The same contacts, but for the list (not given) and the consent (this import's).
    assert [row[:8] + row[11:] for row in second] == [row[:8] + row[11:] for row in first]


def test_export_delimiter_help_says_tab(env: dict[str, str]) -> None:
    shown = ok("contacts", "export", "--help", env=env)
    assert "[;|,|tab]" in shown and "\t" not in shown
    tabbed = ok("contacts", "export", "--delimiter", "\t", env=env)
    assert tabbed.lstrip("\ufeff").startswith("email\tfirst_name\t")


def test_segments_edit_changes_only_the_parts_given(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("email;fonction;territoire\na@lyon.fr;Élue;Lyon\n"
                                    "b@grenoble.fr;Élue;Grenoble\nc@lyon.fr;Agent;Lyon\n",
                                    encoding="utf-8")
    ok("lists", "add", "aura", env=env)
    ok("contacts", "import", "c.csv", "--list", "aura", env=env)
    ok("segments", "add", "elus", "--list", "aura", "--where", "role=élue", env=env)
    taken = run("segments", "add", "elus", "--list", "aura", env=env)
    assert taken.exit_code == 1 and "citesmail segments edit elus" in taken.stderr
    edited = ok("segments", "edit", "elus", "--where", "territory=lyon", env=env)
    assert edited.strip() == "segment elus saved: on aura, territory=lyon (2 contacts now)"
    shown = ok("segments", "show", "elus", env=env)
    assert shown.startswith("elus: on aura, territory=lyon\n2 contacts")
    missing = run("segments", "edit", "nope", "--where", "role=x", env=env)
    assert missing.exit_code == 1 and "unknown segment 'nope'" in missing.stderr
    unchanged = run("segments", "edit", "elus", env=env)
    assert unchanged.exit_code == 2 and "nothing to change" in unchanged.stderr


def test_segments_add_takes_alternatives_across_fields(env: dict[str, str],
                                                       tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("email;fonction;territoire\na@lyon.fr;Élue;Lyon\n"
                                    "b@grenoble.fr;Agent;Grenoble\nc@lyon.fr;Agent;Lyon\n",
                                    encoding="utf-8")
    ok("contacts", "import", "c.csv", env=env)
    saved = ok("segments", "add", "elus-ou-grenoble", "--where", "role=élue | territory=grenoble",
               env=env)
    assert saved.strip() == ("segment elus-ou-grenoble saved: role=élue | territory=grenoble "
                             "(2 contacts now)")


def test_a_segment_has_a_title_people_can_read(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("email;territoire\na@lyon.fr;Lyon\n", encoding="utf-8")
    ok("contacts", "import", "c.csv", env=env)
    ok("segments", "add", "lyon", "--where", "territory=lyon", "--title",
       "Partenaires lyonnais", env=env)
    assert ok("segments", "show", "lyon", env=env).startswith(
        "lyon (Partenaires lyonnais): territory=lyon\n")
    assert "Partenaires lyonnais" in ok("segments", "list", env=env)
    ok("segments", "edit", "lyon", "--title", "Lyon et métropole", env=env)
    shown = ok("segments", "show", "lyon", env=env)
    assert shown.startswith("lyon (Lyon et métropole): territory=lyon\n")  # the rest stays
