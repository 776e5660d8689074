"""Segments evaluated in SQL: lists, exclusions, conditions; only active contacts; streamed."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from citesmail.audience.contacts import select_contacts
from citesmail.audience.importer import import_contacts
from citesmail.audience.lists import add_list, remove_list
from citesmail.audience.segments import (
    Condition,
    Definition,
    add_segment,
    all_segments,
    count,
    get_segment,
    parse_condition,
    parse_where,
    remove_segment,
    steps,
    stream,
)
from citesmail.db import Contact, Database
from citesmail.errors import CitesmailError

PEOPLE = """email;prénom;fonction;territoire;organisme;langue;secteur
a@lyon.fr;A;délégué du préfet;Lyon;Préfecture;fr;emploi
b@lyon.fr;B;chargé de mission;Lyon;Ville;fr;insertion
c@st-etienne.fr;C;délégué du préfet;Saint-Étienne;Préfecture;fr;emploi
d@grenoble.fr;D;délégué du préfet;Grenoble;Préfecture;en;
e@lyon.fr;E;délégué du préfet;Lyon;Préfecture;fr;emploi
f@asso.org;F;président;Vénissieux;Asso « Ensemble »;fr;x' OR '1'='1
"""


@pytest.fixture
def people(db: Database, tmp_path: Path) -> Database:
    with db.session() as session:
        add_list(session, "partenaires")
        add_list(session, "prefecture")
        add_list(session, "partis")
    path = tmp_path / "p.csv"
    path.write_text(PEOPLE, encoding="utf-8")
    import_contacts(db, path, list_name="partenaires")
    lines = PEOPLE.splitlines()
    prefecture = tmp_path / "pref.csv"
    prefecture.write_text("\n".join([lines[0], lines[1], lines[3], lines[4]]), encoding="utf-8")
    import_contacts(db, prefecture, list_name="prefecture")
    gone = tmp_path / "gone.csv"
    gone.write_text("email\nc@st-etienne.fr\n", encoding="utf-8")
    import_contacts(db, gone, list_name="partis")
    with db.session() as session:
        session.execute(update(Contact).where(Contact.email == "e@lyon.fr")
                        .values(status="unsubscribed"))
    return db


def emails(db: Database, definition: Definition) -> list[str]:
    with db.session() as session:
        found = [c.email for batch in stream(session, definition) for c in batch]
        assert count(session, definition) == len(found)
    return found


def where(*conditions: str, lists: tuple[str, ...] = (),
          exclude: tuple[str, ...] = ()) -> Definition:
    return Definition(list(lists), list(exclude), [parse_condition(c) for c in conditions])


def test_only_active_contacts_ever_match(people: Database) -> None:
    assert "e@lyon.fr" not in emails(people, where())
    assert emails(people, where("territory=Lyon")) == ["a@lyon.fr", "b@lyon.fr"]


def test_repeated_field_is_any_of_and_fields_are_all_of(people: Database) -> None:
    found = emails(people, where("territory=Lyon", "territory=Grenoble",
                                 "role=délégué du préfet"))
    assert found == ["a@lyon.fr", "d@grenoble.fr"]


def test_not_equal_includes_contacts_without_a_value(people: Database) -> None:
    assert emails(people, where("attr.secteur!=emploi")) == [
        "b@lyon.fr", "d@grenoble.fr", "f@asso.org"]
    assert emails(people, where("lang!=fr", "lang!=en")) == []


def test_attributes_domain_and_lists(people: Database) -> None:
    assert emails(people, where("attr.secteur=emploi")) == ["a@lyon.fr", "c@st-etienne.fr"]
    assert emails(people, where("domain=LYON.fr")) == ["a@lyon.fr", "b@lyon.fr"]
    assert emails(people, where(lists=("prefecture",))) == [
        "a@lyon.fr", "c@st-etienne.fr", "d@grenoble.fr"]
    assert emails(people, where(lists=("partis",))) == ["c@st-etienne.fr"]
    assert emails(people, where("role=délégué du préfet", lists=("partenaires",),
                                exclude=("partis",))) == ["a@lyon.fr", "d@grenoble.fr"]


def test_sql_looking_values_match_literally(people: Database) -> None:
    assert emails(people, where("attr.secteur=x' OR '1'='1")) == ["f@asso.org"]
    assert emails(people, where("organization=Asso « Ensemble »")) == ["f@asso.org"]
    assert emails(people, where("territory=' OR 1=1 --")) == []


def test_streaming_is_keyset_batched_in_id_order(people: Database) -> None:
    with people.session() as session:
        batches = list(stream(session, where(), batch=2))
    assert [len(b) for b in batches] == [2, 2, 1]
    ids = [c.id for batch in batches for c in batch]
    assert ids == sorted(ids)


def test_unknown_field_lists_the_known_ones() -> None:
    with pytest.raises(CitesmailError) as caught:
        parse_condition("ville=Lyon")
    assert "unknown field 'ville'" in str(caught.value)
    assert "known fields: role, lang, domain, territory, organization" in str(caught.value)
    with pytest.raises(CitesmailError, match="field=value"):
        parse_condition("Lyon")


def test_saved_segments_and_unknown_lists(people: Database) -> None:
    with people.session() as session:
        add_segment(session, "prefets-lyon", where("territory=Lyon", lists=("prefecture",)))
        with pytest.raises(CitesmailError, match="unknown list 'nope'"):
            add_segment(session, "broken", where(lists=("nope",)))
        with pytest.raises(CitesmailError, match="already exists"):
            add_segment(session, "prefets-lyon", where())
    with people.session() as session:
        _, definition = get_segment(session, "prefets-lyon")
        assert count(session, definition) == 1
        with pytest.raises(CitesmailError, match="used by segment prefets-lyon"):
            remove_list(session, "prefecture")
        with pytest.raises(CitesmailError, match=r"unknown segment 'x'.*prefets-lyon"):
            get_segment(session, "x")


def test_a_saved_segment_reads_back_with_its_exclusions_and_negations(
        people: Database) -> None:
    """What a send reaches is what was saved: excluded lists and `!=` survive the database."""
    saved = where("territory!=Lyon", "attr.secteur=emploi", "domain=st-etienne.fr",
                  lists=("partenaires", "prefecture"), exclude=("partis",))
    with people.session() as session:
        add_segment(session, "sans-partis", saved)
        add_segment(session, "hors-lyon", where("territory!=Lyon", lists=("partenaires",)))
    with people.session() as session:
        _, definition = get_segment(session, "sans-partis")
        assert definition == saved
        assert definition.describe() == ("on partenaires or prefecture, not on partis, "
                                          "territory!=Lyon, attr.secteur=emploi, "
                                          "domain=st-etienne.fr")
        assert [name for name, _ in all_segments(session)] == ["hors-lyon", "sans-partis"]
        assert dict(all_segments(session))["sans-partis"] == saved
    assert emails(people, definition) == []  # c@st-etienne.fr is on the excluded list
    with people.session() as session:
        _, hors_lyon = get_segment(session, "hors-lyon")
    assert hors_lyon.where == [parse_condition("territory!=Lyon")]
    assert emails(people, hors_lyon) == ["c@st-etienne.fr", "d@grenoble.fr", "f@asso.org"]


def test_segment_names_are_checked(people: Database) -> None:
    with people.session() as session:
        for name in ("prefets lyon", "Prefets", "prefets/lyon", ""):
            with pytest.raises(CitesmailError, match="invalid segment name"):
                add_segment(session, name, where())
    with people.session() as session:
        assert all_segments(session) == []


def test_a_segment_on_a_list_keeps_to_the_list_members(people: Database) -> None:
    """`contacts list/export --list L --segment S`: those of S who are on L, no one else."""
    with people.session() as session:
        add_segment(session, "prefets", where("role=délégué du préfet"))
    with people.session() as session:
        both = [c.email for batch in select_contacts(session, list_name="prefecture",
                                                       segment="prefets") for c in batch]
        on_list = [c.email for batch in select_contacts(session, list_name="partis")
                   for c in batch]
        everyone = [c.email for batch in select_contacts(session) for c in batch]
    assert both == ["a@lyon.fr", "c@st-etienne.fr", "d@grenoble.fr"]
    assert on_list == ["c@st-etienne.fr"]
    assert len(everyone) == 6  # the unsubscribed one too: no segment, no status filter


def test_streaming_chosen_columns(people: Database) -> None:
    with people.session() as session:
        pairs = [row for batch in stream(session, where("territory=Lyon"),
                                         columns=(Contact.email, Contact.territory))
                 for row in batch]
        single = [row for batch in stream(session, where("territory=Lyon"),
                                          columns=(Contact.email,)) for row in batch]
    assert [tuple(p) for p in pairs] == [("a@lyon.fr", "Lyon"), ("b@lyon.fr", "Lyon")]
    assert single == ["a@lyon.fr", "b@lyon.fr"]


def test_conditions_are_read_with_spaces_and_values_holding_signs() -> None:
    assert parse_condition("  territory = Lyon  ") == Condition("territory", False, "Lyon")
    assert parse_condition("attr.note!=a=b!=c") == Condition("attr.note", True, "a=b!=c")
    assert parse_condition("domain=Bücher.DE") == Condition("domain", False, "xn--bcher-kva.de")


@pytest.mark.parametrize(("text", "message"), [
    ("Lyon", "cannot read condition 'Lyon' — write field=value (case and accents "
             "ignored), field==value (exact), field!=value or field!==value, e.g. "
             "territory=Lyon"),
    ("ville=Lyon", "unknown field 'ville' in 'ville=Lyon' — known fields: role, lang, domain, "
                   "territory, organization, and attr.NAME for an imported column"),
    ("attr. =x", "no attribute name in 'attr. =x' — write attr.NAME=value"),
    ("domain=pas un domaine", "invalid domain in 'domain=pas un domaine': "),
])
def test_conditions_that_cannot_be_read(text: str, message: str) -> None:
    with pytest.raises(CitesmailError) as caught:
        parse_condition(text)
    assert str(caught.value).startswith(message)


def test_descriptions_and_definitions_saved_before_exclusions() -> None:
    assert Definition().describe() == "every active contact"
    assert where(lists=("a", "b")).describe() == "on a or b"
    assert where(exclude=("c", "d")).describe() == "not on c or d"
    assert Definition.from_json({}) == Definition()
    assert Definition.from_json({"lists": ["a"]}) == where(lists=("a",))


def test_removed_segments_and_the_names_that_exist(people: Database) -> None:
    with people.session() as session:
        with pytest.raises(CitesmailError) as caught:
            get_segment(session, "x")
        assert str(caught.value) == (
            "unknown segment 'x' — create it with: citesmail segments add x --list ...")
        add_segment(session, "zz", where())
        add_segment(session, "aa", where())
        with pytest.raises(CitesmailError) as caught:
            add_segment(session, "zz", where("lang=fr"))
        assert str(caught.value) == (
            "segment 'zz' already exists — change it with citesmail segments edit zz (or "
            "remove it first: citesmail segments remove zz)")
    with people.session() as session:
        with pytest.raises(CitesmailError) as caught:
            get_segment(session, "x")
        assert str(caught.value) == "unknown segment 'x' — known segments: aa, zz"
        remove_segment(session, "zz")
        with pytest.raises(CitesmailError, match="unknown segment 'nope'"):
            remove_segment(session, "nope")
    with people.session() as session:
        assert [name for name, _ in all_segments(session)] == ["aa"]


def test_batches_follow_ids_whatever_index_serves_the_conditions(people: Database) -> None:
    """Conditions on an indexed column (the domain) must not change the order a keyset
    pagination relies on: every matching contact comes, once, in id order."""
    definition = where("domain=lyon.fr", "domain=grenoble.fr", "domain=asso.org")
    with people.session() as session:
        found = [c.email for batch in stream(session, definition, batch=1) for c in batch]
    assert found == ["a@lyon.fr", "b@lyon.fr", "d@grenoble.fr", "f@asso.org"]


# Active: a (délégué du préfet, Lyon, emploi), b (chargé de mission, Lyon, insertion),
# c (délégué du préfet, Saint-Étienne, emploi), d (délégué du préfet, Grenoble, no secteur),
# f (président, Vénissieux); e is unsubscribed.
EVERYONE = ["a@lyon.fr", "b@lyon.fr", "c@st-etienne.fr", "d@grenoble.fr", "f@asso.org"]


@pytest.mark.parametrize(("conditions", "found"), [
    (("role=DELEGUE DU PREFET",), ["a@lyon.fr", "c@st-etienne.fr", "d@grenoble.fr"]),
    (("role=  Délégué   du préfet ",), ["a@lyon.fr", "c@st-etienne.fr", "d@grenoble.fr"]),
    (("territory=saint-etienne",), ["c@st-etienne.fr"]),
    (("organization=ASSO « ENSEMBLE »",), ["f@asso.org"]),
    (("attr.secteur=EMPLOI",), ["a@lyon.fr", "c@st-etienne.fr"]),
    (("lang=FR",), ["a@lyon.fr", "b@lyon.fr", "c@st-etienne.fr", "f@asso.org"]),
    (("domain=Lyon.FR",), ["a@lyon.fr", "b@lyon.fr"]),
])
def test_equal_ignores_case_and_accents(people: Database, conditions: tuple[str, ...],
                                        found: list[str]) -> None:
    assert emails(people, where(*conditions)) == found


@pytest.mark.parametrize(("conditions", "found"), [
    (("role==délégué du préfet",), ["a@lyon.fr", "c@st-etienne.fr", "d@grenoble.fr"]),
    (("role==Délégué du préfet",), []),
    (("role==delegue du prefet",), []),
    (("territory==Saint-Étienne",), ["c@st-etienne.fr"]),
    (("attr.secteur==emploi",), ["a@lyon.fr", "c@st-etienne.fr"]),
    (("attr.secteur==Emploi",), []),
    (("lang==FR",), []),
    (("lang==fr",), ["a@lyon.fr", "b@lyon.fr", "c@st-etienne.fr", "f@asso.org"]),
])
def test_double_equal_is_exact(people: Database, conditions: tuple[str, ...],
                               found: list[str]) -> None:
    assert emails(people, where(*conditions)) == found


@pytest.mark.parametrize(("conditions", "found"), [
    (("role!=DÉLÉGUÉ DU PRÉFET",), ["b@lyon.fr", "f@asso.org"]),
    (("role!==DÉLÉGUÉ DU PRÉFET",), EVERYONE),
    (("role!==délégué du préfet",), ["b@lyon.fr", "f@asso.org"]),
    (("attr.secteur!=EMPLOI",), ["b@lyon.fr", "d@grenoble.fr", "f@asso.org"]),
    (("attr.secteur!==EMPLOI",), EVERYONE),
    (("attr.secteur!==emploi",), ["b@lyon.fr", "d@grenoble.fr", "f@asso.org"]),
    (("attr.secteur!=emploi", "attr.secteur!=INSERTION"), ["d@grenoble.fr", "f@asso.org"]),
    (("role!=chargé de mission", "role!==président"),
     ["a@lyon.fr", "c@st-etienne.fr", "d@grenoble.fr"]),
    (("lang!=FR",), ["d@grenoble.fr"]),
])
def test_negations_insensitive_and_exact_keep_contacts_without_a_value(
        people: Database, conditions: tuple[str, ...], found: list[str]) -> None:
    assert emails(people, where(*conditions)) == found


def test_a_field_repeated_with_both_equals_is_any_of(people: Database) -> None:
    assert emails(people, where("role==président", "role=CHARGE DE MISSION")) == [
        "b@lyon.fr", "f@asso.org"]
    assert emails(people, where("role==Président", "role=chargé de mission",
                                "territory=LYON")) == ["b@lyon.fr"]


@pytest.mark.parametrize(("text", "condition"), [
    ("role=x", Condition("role", False, "x")),
    ("role==x", Condition("role", False, "x", exact=True)),
    ("role!=x", Condition("role", True, "x")),
    ("role!==x", Condition("role", True, "x", exact=True)),
    ("attr.note !== a==b", Condition("attr.note", True, "a==b", exact=True)),
    ("attr.note == =b", Condition("attr.note", False, "=b", exact=True)),
])
def test_the_four_operators_read_and_write_back(text: str, condition: Condition) -> None:
    assert parse_condition(text) == condition
    assert parse_condition(str(condition)) == condition


def test_steps_say_which_condition_removed_everyone(people: Database) -> None:
    definition = where("territory=Lyon", "territory=grenoble", "role=directeur",
                       lists=("partenaires", "prefecture"), exclude=("partis",))
    with people.session() as session:
        assert steps(session, definition) == [
            ("active contacts", 5), ("on partenaires or prefecture", 5),
            ("not on partis", 4), ("territory=Lyon or territory=grenoble", 3),
            ("role=directeur", 0)]
        assert steps(session, Definition()) == [("active contacts", 5)]


def test_a_where_with_alternatives_is_any_of_across_fields(people: Database) -> None:
    """'délégués du préfet, or anyone in Lyon': one --where, alternatives split by |."""
    either = parse_where("role=délégué du préfet | territory=lyon")
    assert str(either) == "role=délégué du préfet | territory=lyon"
    assert emails(people, Definition([], [], [either])) == [
        "a@lyon.fr", "b@lyon.fr", "c@st-etienne.fr", "d@grenoble.fr"]
    narrowed = Definition([], [], [either, parse_where("lang=fr")])  # and the rest: all of
    assert emails(people, narrowed) == ["a@lyon.fr", "b@lyon.fr", "c@st-etienne.fr"]
    negated = Definition([], [], [parse_where("territory!=lyon | attr.secteur==emploi")])
    assert emails(people, negated) == ["a@lyon.fr", "c@st-etienne.fr", "d@grenoble.fr",
                                       "f@asso.org"]
    saved = Definition.from_json(Definition([], [], [either]).to_json())
    assert saved.where == [either]
    assert parse_where("organization=A|B") == parse_condition("organization=A|B")  # a value


def test_a_segment_with_alternatives_is_saved_and_counted(people: Database) -> None:
    either = parse_where("role=président | territory=grenoble")
    with people.session() as session:
        add_segment(session, "mixte", Definition(["partenaires"], [], [either]))
    with people.session() as session:
        _, definition = get_segment(session, "mixte")
        assert definition.describe() == "on partenaires, role=président | territory=grenoble"
        assert steps(session, definition)[-1] == ("role=président | territory=grenoble", 2)
