"""contacts import, row by row: blank and short rows, header spellings, the list and the
suppression list, the report's order and the progress shown on the way."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from citesmail.audience import importer
from citesmail.audience.contacts import erase
from citesmail.audience.csvfile import read_sheet
from citesmail.audience.exporter import export_contacts
from citesmail.audience.importer import import_contacts
from citesmail.audience.lists import add_list, get_list
from citesmail.db import Contact, Database, Membership
from citesmail.errors import CitesmailError
from tests.audience.test_importer import contacts, write_csv


def members(db: Database, list_name: str) -> set[str]:
    with db.session() as session:
        list_id = get_list(session, list_name).id
        return set(session.scalars(select(Contact.email).join(
            Membership, Membership.contact_id == Contact.id).where(
                Membership.list_id == list_id)))


def test_a_blank_line_in_the_middle_does_not_end_the_import(db: Database,
                                                              tmp_path: Path) -> None:
    text = "email;nom\na@ex.fr;A\n\nb@ex.fr;B\n;\n  ;  \nmauvais;M\nc@ex.fr;C\n"
    report = import_contacts(db, write_csv(tmp_path, text))
    assert report.summary() == "3 imported, 0 updated, 1 rejected, 0 duplicates"
    assert report.details() == [
        "line 7: rejected: mauvais: An email address must have an @-sign."]
    assert {e: c.last_name for e, c in contacts(db).items()} == {
        "a@ex.fr": "A", "b@ex.fr": "B", "c@ex.fr": "C"}


def test_rows_shorter_than_the_header_are_read_with_empty_cells(db: Database,
                                                               tmp_path: Path) -> None:
    """Spreadsheets leave out a row's trailing empty cells."""
    text = "email;nom;ville;secteur\na@ex.fr;Martin\nb@ex.fr\nc@ex.fr;Roux;Lyon;emploi\n"
    report = import_contacts(db, write_csv(tmp_path, text))
    assert report.summary() == "3 imported, 0 updated, 0 rejected, 0 duplicates"
    found = contacts(db)
    a, b, c = found["a@ex.fr"], found["b@ex.fr"], found["c@ex.fr"]
    assert (a.last_name, a.territory, a.attributes) == ("Martin", None, {})
    assert (b.last_name, b.territory, b.attributes) == (None, None, {})
    assert (c.last_name, c.territory, c.attributes) == ("Roux", "Lyon", {"secteur": "emploi"})


def test_a_short_row_without_its_email_cell_is_rejected(db: Database,
                                                        tmp_path: Path) -> None:
    text = "nom;ville;email\nMartin;Lyon\nRoux;Lyon;r@ex.fr\n"
    report = import_contacts(db, write_csv(tmp_path, text))
    assert report.details() == ["line 2: rejected: no email address"]
    assert set(contacts(db)) == {"r@ex.fr"}


def test_hyphenated_header_names(db: Database, tmp_path: Path) -> None:
    text = ("Adresse-Mail;First-Name;last-name;Nom-de-famille;Email-Address\n"
            "a@ex.fr;Ana;Lopez;Autre;b@ex.fr\n")
    import_contacts(db, write_csv(tmp_path, text))
    a = contacts(db)["a@ex.fr"]
    assert (a.first_name, a.last_name) == ("Ana", "Lopez")
    # A second column for a field already found is kept as an attribute.
    assert a.attributes == {"Nom-de-famille": "Autre", "Email-Address": "b@ex.fr"}


@pytest.mark.parametrize("delimiter", [",", "\t", ";"])
def test_the_header_decides_the_separator_when_the_rows_do_not(
        db: Database, tmp_path: Path, delimiter: str) -> None:
    """Rows of different lengths leave the sniffer undecided: the header's most frequent
    separator is taken."""
    text = "email,nom,ville\na@ex.fr\nb@ex.fr,Bernard\n".replace(",", delimiter)
    path = write_csv(tmp_path, text)
    assert read_sheet(path).delimiter == delimiter
    report = import_contacts(db, path)
    assert report.imported == 2 and not report.rejected
    assert contacts(db)["b@ex.fr"].last_name == "Bernard"


def test_only_the_header_line_decides_the_separator(db: Database, tmp_path: Path) -> None:
    """Its names may hold spaces, and the rows other separators."""
    path = write_csv(tmp_path, "Adresse mail,Nom\na@ex.fr\nb@ex.fr;x;y;z\nc@ex.fr,C\n")
    assert read_sheet(path).delimiter == ","
    import_contacts(db, path)
    assert contacts(db)["c@ex.fr"].last_name == "C"


def test_header_names_with_underscores_or_runs_of_spaces(db: Database,
                                                          tmp_path: Path) -> None:
    text = "Adresse_Mail;Nom  de   famille;first__name\na@ex.fr;Lopez;Ana\n"
    import_contacts(db, write_csv(tmp_path, text))
    a = contacts(db)["a@ex.fr"]
    assert (a.first_name, a.last_name, a.attributes) == ("Ana", "Lopez", {})


def test_new_and_known_contacts_all_join_the_list(db: Database, tmp_path: Path) -> None:
    with db.session() as session:
        add_list(session, "partenaires")
        add_list(session, "autres")
    import_contacts(db, write_csv(tmp_path, "email\nknown@ex.fr\nother@ex.fr\n"),
                    list_name="autres")
    report = import_contacts(db, write_csv(tmp_path, "email\nnew@ex.fr\nknown@ex.fr\n",
                                           name="b.csv"), list_name="partenaires")
    assert (report.imported, report.unchanged) == (1, 1)
    assert members(db, "partenaires") == {"new@ex.fr", "known@ex.fr"}
    assert members(db, "autres") == {"known@ex.fr", "other@ex.fr"}


def test_erased_addresses_are_not_imported_again(db: Database, tmp_path: Path) -> None:
    with db.session() as session:
        add_list(session, "l")
    import_contacts(db, write_csv(tmp_path, "email;nom\ngone@ex.fr;G\nlost@ex.fr;L\n"))
    with db.session() as session:
        erase(session, ("gone@ex.fr", "lost@ex.fr"))
    text = "email;nom\nstay@ex.fr;S\nGONE@EX.FR;G\nlost@ex.fr;L\n"
    report = import_contacts(db, write_csv(tmp_path, text, name="b.csv"), list_name="l",
                             update_existing=True)
    assert report.summary() == ("1 imported, 0 updated, 0 rejected, 0 duplicates, "
                                "2 erased addresses skipped")
    assert report.details() == [
        "line 3: skipped: GONE@ex.fr was erased (suppression list)",
        "line 4: skipped: lost@ex.fr was erased (suppression list)"]
    assert set(contacts(db)) == {"stay@ex.fr"}
    assert members(db, "l") == {"stay@ex.fr"}
    one = import_contacts(db, write_csv(tmp_path, "email\nlost@ex.fr\n", name="c.csv"))
    assert one.summary().endswith(", 1 erased address skipped")


def test_report_lines_follow_the_file_whatever_their_kind(db: Database,
                                                         tmp_path: Path) -> None:
    import_contacts(db, write_csv(tmp_path, "email\ngone@ex.fr\n"))
    with db.session() as session:
        erase(session, ("gone@ex.fr",))
    rows = [f"n{i}@ex.fr;N" for i in range(7)]  # lines 2 to 8
    text = "\n".join(["email;nom;status", *rows, "gone@ex.fr;G", "n1@ex.fr;bis",
                      "mauvais;M", ";X", "n2@ex.fr;ter"]) + "\n"
    report = import_contacts(db, write_csv(tmp_path, text, name="b.csv"))
    assert report.columns() == [
        "column 'status' ignored: an import never changes a status"]
    assert report.details() == [
        "line 9: skipped: gone@ex.fr was erased (suppression list)",
        "line 10: duplicate: n1@ex.fr is already on line 3",
        "line 11: rejected: mauvais: An email address must have an @-sign.",
        "line 12: rejected: no email address",
        "line 13: duplicate: n2@ex.fr is already on line 4",
    ]


def test_progress_is_reported_after_each_chunk(db: Database, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with db.session() as session:
        add_list(session, "l")
    import_contacts(db, write_csv(tmp_path, "email\nknown@ex.fr\n"))
    monkeypatch.setattr(importer, "INSERT_CHUNK", 2)
    calls: list[tuple[int, int]] = []
    text = "email\n" + "".join(f"n{i}@ex.fr\n" for i in range(5)) + "known@ex.fr\n"
    report = import_contacts(db, write_csv(tmp_path, text, name="b.csv"), list_name="l",
                             progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 6), (4, 6), (5, 6)]
    assert report.imported == 5 and len(contacts(db)) == 6
    assert members(db, "l") == set(contacts(db))  # the new ones of every chunk


def test_cells_an_export_protected_import_back_as_they_were(db: Database,
                                                             tmp_path: Path) -> None:
    """`contacts export` writes '=x for =x (so that no spreadsheet runs it): the
    apostrophe goes again on import, in any column and on messy rows too."""
    text = ("email;prénom;nom;organisme;fonction;ville;'=calcul\n"
            "a@ex.fr;'Anne;'+33 6;'@asso;'-x;l'Isle;'=1+1\n"
            "b@ex.fr;Bob ; Roux ;x;y;z; '=2+2 \n"
            "c@ex.fr;';'';'a;'=;Lyon;ok\n")
    report = import_contacts(db, write_csv(tmp_path, text))
    assert report.details() == [
        "line 1: warning: column '=calcul' looks like a spreadsheet formula; kept as an "
        "attribute, exported as ''=calcul'"]
    found = contacts(db)
    a, b, c = found["a@ex.fr"], found["b@ex.fr"], found["c@ex.fr"]
    assert (a.first_name, a.last_name, a.organization, a.role, a.territory) == (
        "'Anne", "+33 6", "@asso", "-x", "l'Isle")
    assert a.attributes == {"=calcul": "=1+1"}
    assert (b.first_name, b.last_name, b.attributes) == ("Bob", "Roux", {"=calcul": "=2+2"})
    assert (c.first_name, c.last_name, c.organization, c.role) == ("'", "''", "'a", "=")


def test_columns_only_an_export_has_are_left_out_and_said_so(db: Database,
                                                             tmp_path: Path) -> None:
    text = "email;Status;LISTS;secteur;Statut;listes\na@ex.fr;unsubscribed;x, y;emploi;;\n"
    report = import_contacts(db, write_csv(tmp_path, text))
    assert report.details() == []
    assert report.columns() == [
        "column 'secteur' → attribute 'secteur'",
        "column 'Status' ignored: an import never changes a status",
        "column 'LISTS' ignored: give the list with --list",
        "column 'Statut' ignored: an import never changes a status",
        "column 'listes' ignored: give the list with --list"]
    a = contacts(db)["a@ex.fr"]
    assert (a.status, a.attributes) == ("active", {"secteur": "emploi"})


def test_an_update_takes_the_new_spelling_and_dates_the_change(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with db.session() as session:
        add_list(session, "l")
    import_contacts(db, write_csv(tmp_path, "email;nom\nanne@ex.fr;Martin\n"))
    monkeypatch.setattr(importer, "utcnow", lambda: datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC))
    text = "email;nom\n Anne@EX.FR ;Martin-Roux\n"
    report = import_contacts(db, write_csv(tmp_path, text, name="b.csv"),
                             update_existing=True, list_name="l")
    assert report.updated == 1
    anne = contacts(db)["Anne@ex.fr"]
    assert anne.last_name == "Martin-Roux"
    assert anne.created_at.year < 2031 and anne.updated_at.year == 2031
    with db.session() as session:
        assert [added.year for added in session.scalars(select(Membership.added_at))] == [2031]


def test_a_utf8_bom_is_not_part_of_the_first_header(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "Secteur;email\nemploi;a@ex.fr\n", "utf-8-sig")
    assert read_sheet(path).encoding == "utf-8-sig"
    import_contacts(db, path)
    assert contacts(db)["a@ex.fr"].attributes == {"Secteur": "emploi"}


@pytest.mark.parametrize(("data", "encoding"), [
    ("email;nom\na@ex.fr;Noël\n".encode(), "utf-8"),
    ("email;nom\na@ex.fr;Noël\n".encode("cp1252"), "cp1252"),
])
def test_the_encoding_is_recognised(tmp_path: Path, data: bytes, encoding: str) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(data)
    sheet = read_sheet(path)
    assert sheet.encoding == encoding
    assert list(sheet.rows) == [(2, ["a@ex.fr", "Noël"])]


def import_error(db: Database, path: Path) -> str:
    with pytest.raises(CitesmailError) as caught:
        import_contacts(db, path)
    assert contacts(db) == {}
    return str(caught.value)


def test_a_file_in_no_known_encoding_says_where(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"email;nom\na@ex.fr;\x81\n")  # 0x81: in neither UTF-8 nor cp1252
    assert import_error(db, path) == (
        f"{path}: neither UTF-8 nor Windows-1252 (byte 18) — save the file as CSV UTF-8 "
        "from your spreadsheet")


def test_an_unclosed_quote_is_reported_on_the_line_it_opens(db: Database,
                                                            tmp_path: Path) -> None:
    endless = "".join(f"suite {i}\n" for i in range(20_000))  # past the csv field limit
    body = write_csv(tmp_path, f'email;nom\na@ex.fr;A\nb@ex.fr;"Ouvert\n{endless}')
    assert import_error(db, body) == (
        f"{body}:3: field larger than field limit (131072) — check the quotes on that line")
    header = write_csv(tmp_path, f'email;"nom\n{endless}', name="h.csv")
    assert import_error(db, header) == (
        f"{header}:1: cannot read the header: field larger than field limit (131072)")


def test_files_without_a_usable_header_say_what_to_do(db: Database, tmp_path: Path) -> None:
    empty = write_csv(tmp_path, " \n\n")
    assert import_error(db, empty) == (
        f"{empty}: the file is empty — export the contacts again, with a header row")
    blank_first = write_csv(tmp_path, "\nemail\na@ex.fr\n", name="b.csv")
    assert import_error(db, blank_first) == (
        f"{blank_first}:1: no email column (headers found: none) — name one column email, "
        "e-mail, courriel, mail or adresse mail")


def test_a_utf8_mark_before_text_that_is_not_utf8_is_a_clear_error(
        db: Database, tmp_path: Path) -> None:
    """Not an internal error: the file says UTF-8 and is not (Windows-1252 behind a BOM)."""
    path = tmp_path / "x.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "email;nom\na@ex.fr;Noël\n".encode("cp1252"))
    assert import_error(db, path) == (
        f"{path}: not UTF-8, though the file starts with the UTF-8 mark (byte 23) — save "
        "the file as CSV UTF-8 from your spreadsheet")


def test_an_export_imports_back_to_the_same_contacts(db: Database, tmp_path: Path) -> None:
    text = ("email;prénom;nom;organisme;fonction;ville;=calcul\n"
            "a@ex.fr;Anne;+33 6;@asso;-x;l'Isle;=1+1\n"
            "b@ex.fr;'Bob;Roux;Ville;;Lyon;\n")
    import_contacts(db, write_csv(tmp_path, text))
    fields = ("first_name", "last_name", "organization", "role", "territory", "attributes")
    before = {e: [getattr(c, f) for f in fields] for e, c in contacts(db).items()}
    exported = io.StringIO()
    with db.session() as session:
        export_contacts(session, exported)
        session.execute(delete(Contact))
    report = import_contacts(db, write_csv(tmp_path, exported.getvalue(), name="export.csv"))
    assert report.imported == 2 and not report.rejected
    assert {e: [getattr(c, f) for f in fields] for e, c in contacts(db).items()} == before
