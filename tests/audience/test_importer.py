"""contacts import: real-world French exports, every kind of bad row, one transaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from citesmail.audience import consent, importer
from citesmail.audience.importer import import_contacts
from citesmail.audience.lists import add_list
from citesmail.db import Contact, Database, MailingList, Membership
from citesmail.errors import CitesmailError

OFFICE_EXPORT = (
    "Courriel;Prénom;NOM;Structure;Fonction;Commune;Secteur d'activité\r\n"
    "anne.martin@ville-lyon.fr;Anne;Martin;Ville de Lyon;Déléguée du préfet;Lyon;Emploi\r\n"
    "Bilal.Haddad@Mission-Locale.FR;Bilal;Haddad;Mission locale;Conseiller;Vénissieux;\r\n"
    "pas-une-adresse;Paul;Petit;;;;\r\n"
    "  chloe@asso.org  ;Chloé;Leroy;Association « Quartiers »;Présidente;Vaulx-en-Velin;Asso\r\n"
    "ANNE.MARTIN@ville-lyon.fr;Anne;Martin (bis);;;;\r\n"
    ";Sans;Adresse;;;;\r\n"
    "zoe@bücher.de;Zoé;Durand;;;;\r\n"
    "x@conseil.fr;Xavier;Roux;Conseil citoyen;Membre;Lyon;Citoyens\r\n"
)


def history(db: Database, contact_id: int) -> list[consent.Event]:
    with db.session(write=False) as session:
        return consent.history(session, contact_id)


def write_csv(tmp_path: Path, text: str, encoding: str = "utf-8",
              name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def contacts(db: Database) -> dict[str, Contact]:
    with db.session() as session:
        return {c.email: c for c in session.scalars(select(Contact))}


def test_office_export_in_cp1252_with_semicolons(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path, OFFICE_EXPORT.replace("zoe@bücher.de", "zoe@bucher.de"),
                     "cp1252")
    report = import_contacts(db, path)
    assert report.summary() == "5 imported, 0 updated, 2 rejected, 1 duplicate"
    assert report.details() == [
        "line 4: rejected: pas-une-adresse: An email address must have an @-sign.",
        "line 6: duplicate: ANNE.MARTIN@ville-lyon.fr is already on line 2",
        "line 7: rejected: no email address",
    ]
    found = contacts(db)
    assert set(found) == {"anne.martin@ville-lyon.fr", "Bilal.Haddad@mission-locale.fr",
                          "chloe@asso.org", "zoe@bucher.de", "x@conseil.fr"}
    chloe = found["chloe@asso.org"]
    assert (chloe.first_name, chloe.last_name, chloe.organization, chloe.role,
            chloe.territory) == ("Chloé", "Leroy", "Association « Quartiers »", "Présidente",
                                 "Vaulx-en-Velin")
    assert chloe.attributes == {"Secteur d'activité": "Asso"}
    assert found["Bilal.Haddad@mission-locale.fr"].attributes == {}
    assert chloe.status == "active"
    assert [(e.kind, e.source, e.text) for e in history(db, chloe.id)] == [
        ("import", "contacts.csv:5", "import")]
    assert found["anne.martin@ville-lyon.fr"].first_name == "Anne"  # the first row wins


@pytest.mark.parametrize(("delimiter", "encoding"), [(",", "utf-8-sig"), ("\t", "utf-8"),
                                                     (";", "utf-8")])
def test_delimiters_and_encodings_are_detected(db: Database, tmp_path: Path, delimiter: str,
                                               encoding: str) -> None:
    text = ("E-mail,Prénom,Nom,Ville\n"
            "a@exemple.fr,Élodie,Noël,Saint-Étienne\n"
            '"b@exemple.fr","Jean, Marie","Dupont",Lyon\n').replace(",", delimiter)
    if delimiter != ",":
        text = text.replace(f"Jean{delimiter} Marie", "Jean Marie")
    report = import_contacts(db, write_csv(tmp_path, text, encoding))
    assert report.imported == 2 and not report.rejected
    found = contacts(db)
    assert found["a@exemple.fr"].first_name == "Élodie"
    assert found["a@exemple.fr"].territory == "Saint-Étienne"


def test_header_aliases_any_case_and_accents(db: Database, tmp_path: Path) -> None:
    text = "ADRESSE MAIL;prenom;Last Name;ORGANISME;Rôle;Territoire;Langue\n" \
           "a@exemple.fr;Ana;Lopez;CCAS;Agente;Grenoble;es\n"
    import_contacts(db, write_csv(tmp_path, text))
    a = contacts(db)["a@exemple.fr"]
    assert (a.first_name, a.last_name, a.organization, a.role, a.territory, a.lang) == (
        "Ana", "Lopez", "CCAS", "Agente", "Grenoble", "es")


def test_addresses_are_unique_case_insensitively_and_domains_normalised(
        db: Database, tmp_path: Path) -> None:
    import_contacts(db, write_csv(tmp_path, "email\nJean.Dupont@EXEMPLE.fr\nzoé@Bücher.DE\n"))
    report = import_contacts(db, write_csv(tmp_path, "email\njean.dupont@exemple.FR\n",
                                           name="b.csv"))
    assert report.imported == 0 and report.unchanged == 1
    found = contacts(db)
    assert set(found) == {"Jean.Dupont@exemple.fr", "zoé@bücher.de"}
    assert found["zoé@bücher.de"].domain == "xn--bcher-kva.de"


def test_update_changes_fields_but_never_status(db: Database, tmp_path: Path) -> None:
    import_contacts(db, write_csv(tmp_path, "email;nom;ville;x\na@ex.fr;Ancien;Lyon;1\n"))
    with db.session() as session:
        session.execute(Contact.__table__.update().values(status="unsubscribed"))
    second = write_csv(tmp_path, "email;nom;ville;y\na@ex.fr;Nouveau;;2\n", name="b.csv")
    without = import_contacts(db, second)
    assert without.summary().startswith("0 imported, 0 updated")
    assert contacts(db)["a@ex.fr"].last_name == "Ancien"
    report = import_contacts(db, second, update_existing=True)
    assert report.summary() == "0 imported, 1 updated, 0 rejected, 0 duplicates"
    a = contacts(db)["a@ex.fr"]
    assert a.last_name == "Nouveau"
    assert a.territory == "Lyon"  # an empty cell does not erase
    assert a.attributes == {"x": "1", "y": "2"}
    assert a.status == "unsubscribed"  # no import resubscribes anyone


def test_list_membership(db: Database, tmp_path: Path) -> None:
    with db.session() as session:
        add_list(session, "partenaires")
    path = write_csv(tmp_path, "email\na@ex.fr\nb@ex.fr\n")
    import_contacts(db, path, list_name="partenaires")
    import_contacts(db, path, list_name="partenaires")  # again: no duplicate membership
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Membership)) == 2
    with pytest.raises(CitesmailError, match="unknown list 'partenaire'"):
        import_contacts(db, path, list_name="partenaire")


def test_dry_run_writes_nothing_and_reports_the_same(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path, OFFICE_EXPORT)
    with db.session() as session:
        add_list(session, "l")
    dry = import_contacts(db, path, dry_run=True, list_name="l")
    assert dry.summary() == "dry run, nothing written: 5 imported, 0 updated, 2 rejected, " \
                            "1 duplicate"
    assert contacts(db) == {}
    real = import_contacts(db, path, list_name="l")
    assert real.summary() == dry.summary().removeprefix("dry run, nothing written: ")


def test_an_unexpected_error_leaves_the_database_as_before(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import_contacts(db, write_csv(tmp_path, "email;nom\nold@ex.fr;Old\n"))
    before = {k: (v.last_name, v.status) for k, v in contacts(db).items()}
    original = importer._insert
    calls = []

    def failing(*args: object, **kwargs: object) -> list[int]:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importer, "_insert", failing)
    monkeypatch.setattr(importer, "INSERT_CHUNK", 1000)
    rows = "".join(f"n{i}@ex.fr;N\n" for i in range(3000))
    with pytest.raises(RuntimeError):
        import_contacts(db, write_csv(tmp_path, "email;nom\nold@ex.fr;New\n" + rows,
                                      name="b.csv"), update_existing=True)
    assert len(calls) == 2
    assert {k: (v.last_name, v.status) for k, v in contacts(db).items()} == before


def test_quoted_newlines_keep_line_numbers_right(db: Database, tmp_path: Path) -> None:
    text = 'email;nom;note\na@ex.fr;"Nom\nsur deux lignes";"x"\nmauvais;B;y\n'
    report = import_contacts(db, write_csv(tmp_path, text))
    assert report.details() == [
        "line 4: rejected: mauvais: An email address must have an @-sign."]
    assert contacts(db)["a@ex.fr"].last_name == "Nom sur deux lignes"


def test_row_with_more_columns_than_the_header(db: Database, tmp_path: Path) -> None:
    text = "email;nom\na@ex.fr;A;surplus\nb@ex.fr;B;;\n"
    report = import_contacts(db, write_csv(tmp_path, text))
    assert report.details() == [
        "line 2: rejected: 3 values but the header has 2 columns (a separator inside a "
        "value?)"]
    assert set(contacts(db)) == {"b@ex.fr"}  # trailing empty cells are harmless


def test_values_that_look_like_sql_are_stored_literally(db: Database, tmp_path: Path) -> None:
    evil = "Robert'); DROP TABLE contacts;--"
    text = f'email;nom;ville\na@ex.fr;"{evil}";"x\' OR \'1\'=\'1"\n'
    import_contacts(db, write_csv(tmp_path, text))
    a = contacts(db)["a@ex.fr"]
    assert a.last_name == evil
    assert a.territory == "x' OR '1'='1"


def test_a_value_longer_than_its_column_rejects_the_row_alike_on_both_databases(
        db: Database, tmp_path: Path) -> None:
    """PostgreSQL refused such a value and, with it, the whole import; SQLite stored it."""
    long = "x" * 256
    text = ("email;prénom;nom;organisme;fonction;commune;langue;note\n"
            f"a@ex.fr;{long};;;;;;\n"
            f"b@ex.fr;;{long};;;;;\n"
            f"c@ex.fr;;;{long};;;;\n"
            f"d@ex.fr;;;;{long};;;\n"
            f"e@ex.fr;;;;;{long};;\n"
            "f@ex.fr;;;;;;Français, anglais;\n"
            f"g@ex.fr;{'y' * 255};;;;;fr-FR;{'z' * 5000}\n"
            "a@ex.fr;Anne;;;;;;\n")  # the rejected row's address, right this time
    name = "n" * 251 + ".csv"  # as long as a file name can be
    report = import_contacts(db, write_csv(tmp_path, text, name=name))
    assert report.summary() == "2 imported, 0 updated, 6 rejected, 0 duplicates"
    assert report.details() == [
        "line 2: rejected: prénom: 256 characters, at most 255",
        "line 3: rejected: nom: 256 characters, at most 255",
        "line 4: rejected: organisme: 256 characters, at most 255",
        "line 5: rejected: fonction: 256 characters, at most 255",
        "line 6: rejected: commune: 256 characters, at most 255",
        "line 7: rejected: langue: 17 characters, at most 16 (a language code, such as fr)",
    ]
    found = contacts(db)
    assert set(found) == {"g@ex.fr", "a@ex.fr"}
    assert found["g@ex.fr"].first_name == "y" * 255
    assert found["g@ex.fr"].attributes == {"note": "z" * 5000}  # attributes have no limit
    assert found["a@ex.fr"].first_name == "Anne"
    [event] = history(db, found["a@ex.fr"].id)
    assert event.source == f"{name}:9"
    update = write_csv(tmp_path, f"email;nom\ng@ex.fr;{long}\n", name="u.csv")
    updated = import_contacts(db, update, update_existing=True)
    assert updated.summary() == "0 imported, 0 updated, 1 rejected, 0 duplicates"
    assert contacts(db)["g@ex.fr"].last_name is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"  \r\n", "the file is empty"),
        (b"PK\x03\x04\x00\x00binary", "not a CSV file"),
        ("email;nom\na@ex.fr;A\n".encode("utf-16"), "UTF-16 text (Excel's “Unicode text”) "
                                                 "is not read — save the sheet as “CSV UTF-8”"),
        ("Nom;Prénom;Ville\nA;B;C\n".encode(), "no email column (headers found: 'Nom', "
                                               "'Prénom', 'Ville')"),
    ],
)
def test_files_that_cannot_be_imported(db: Database, tmp_path: Path, content: bytes,
                                       message: str) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(CitesmailError, match=r"x\.csv") as caught:
        import_contacts(db, path)
    assert message in str(caught.value)


def test_lists_are_created_and_named_safely(db: Database) -> None:
    with db.session() as session:
        add_list(session, "partenaires-aura", "Partenaires AURA")
        with pytest.raises(CitesmailError, match="already exists"):
            add_list(session, "partenaires-aura")
        with pytest.raises(CitesmailError, match="invalid list name"):
            add_list(session, "Mes Partenaires")
    with db.session() as session:
        assert session.scalar(select(MailingList.title)) == "Partenaires AURA"
