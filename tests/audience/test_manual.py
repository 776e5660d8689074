"""Contacts and lists by hand: add, edit, public lists; every refusal stores nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from citesmail.audience import consent
from citesmail.audience.contacts import erase, find_contact, lists_of
from citesmail.audience.lists import add_list, edit_list, public_lists, remove_list
from citesmail.audience.manual import add_contact, edit_contact
from citesmail.audience.status import leave
from citesmail.db import ConsentEvent, Contact, Database, MailingList
from citesmail.errors import CitesmailError
from citesmail.states import ContactStatus

FIELDS = {"first_name": "Anne", "last_name": " Martin ", "organization": None,
          "role": "Déléguée du préfet", "territory": "Lyon"}


@pytest.fixture
def lists(db: Database) -> Database:
    with db.session() as session:
        add_list(session, "lettre", "La lettre", "La lettre mensuelle", public=True)
        add_list(session, "elus", "Élus", "")
        add_list(session, "agenda", "Agenda", "Les rendez-vous du centre", public=True)
    return db


def events(db: Database, address: str) -> list[tuple[str, str, str | None, str | None]]:
    with db.session(write=False) as session:
        contact = find_contact(session, address)
        return [(e.kind, e.source, e.list_name, e.text)
                for e in consent.history(session, contact.id)]


def stored(db: Database) -> tuple[int, int]:
    with db.session(write=False) as session:
        return (session.scalar(select(func.count()).select_from(Contact)) or 0,
                session.scalar(select(func.count()).select_from(ConsentEvent)) or 0)


def test_public_lists_are_the_ones_offered_and_edit_changes_what_is_given(
        lists: Database) -> None:
    with lists.session() as session:
        assert [m.name for m in public_lists(session)] == ["agenda", "lettre"]
        edit_list(session, "elus", public=True, title="Les élus")
        edit_list(session, "agenda", public=False)
    with lists.session(write=False) as session:
        assert [m.name for m in public_lists(session)] == ["elus", "lettre"]
        elus = session.scalars(select(MailingList).where(MailingList.name == "elus")).one()
        assert (elus.title, elus.description) == ("Les élus", "")
    with lists.session() as session, pytest.raises(CitesmailError) as caught:
        edit_list(session, "lettres", public=False)
    assert caught.value.problems[0].message == "unknown list 'lettres'"


def test_a_contact_added_by_hand_is_active_on_its_lists_with_its_consent(
        lists: Database) -> None:
    with lists.session() as session:
        add_contact(session, "Anne.Martin@Ville-Lyon.FR", FIELDS, ["lettre", "elus", "lettre"],
                    "Demande faite au forum du 3 mai")
    with lists.session(write=False) as session:
        anne = find_contact(session, "anne.martin@ville-lyon.fr")
        assert (anne.email, anne.status, anne.last_name, anne.territory_key) == (
            "Anne.Martin@ville-lyon.fr", "active", "Martin", "lyon")
        assert lists_of(session, anne.id) == ["elus", "lettre"]
    assert events(lists, "anne.martin@ville-lyon.fr") == [
        ("manual", "command", "lettre", "Demande faite au forum du 3 mai"),
        ("manual", "command", "elus", "Demande faite au forum du 3 mai")]
    with lists.session() as session:
        add_contact(session, "b@ex.fr", {}, [], "Carte de visite")
    assert events(lists, "b@ex.fr") == [("manual", "command", None, "Carte de visite")]


@pytest.mark.parametrize(("address", "list_name", "consent", "said"), [
    ("pas-une-adresse", "lettre", "ok", "invalid address 'pas-une-adresse': An email "
                                        "address must have an @-sign."),
    ("a@ex.fr", "lettres", "ok", "unknown list 'lettres'"),
    ("a@ex.fr", "lettre", "  ", "no consent given"),
])
def test_a_bad_add_stores_nothing(lists: Database, address: str, list_name: str,
                                  consent: str, said: str) -> None:
    with lists.session() as session, pytest.raises(CitesmailError) as caught:
        add_contact(session, address, FIELDS, [list_name], consent)
    assert caught.value.problems[0].message == said
    assert stored(lists) == (0, 0)


def test_an_address_that_left_or_was_erased_is_not_added_back(lists: Database) -> None:
    for address in ("gone@ex.fr", "bounced@ex.fr", "spam@ex.fr", "left@ex.fr", "here@ex.fr"):
        with lists.session() as session:
            add_contact(session, address, {}, [], "ok")
    with lists.session() as session:
        erase(session, ("gone@ex.fr",))
        for address, status in (("bounced@ex.fr", ContactStatus.BOUNCED),
                                ("spam@ex.fr", ContactStatus.COMPLAINED),
                                ("left@ex.fr", ContactStatus.UNSUBSCRIBED)):
            leave(session, [find_contact(session, address).id], status)
    before = stored(lists)
    said = {}
    for address in ("Gone@ex.fr", "bounced@ex.fr", "spam@ex.fr", "left@ex.fr", "here@ex.fr"):
        with lists.session() as session, pytest.raises(CitesmailError) as caught:
            add_contact(session, address, {}, ["lettre"], "encore")
        said[address] = caught.value.problems[0].message
    assert said == {
        "Gone@ex.fr": "Gone@ex.fr was erased (suppression list): it is not added back",
        "bounced@ex.fr": "bounced@ex.fr is not added back: its mail server refused it for "
                         "good (bounced)",
        "spam@ex.fr": "spam@ex.fr is not added back: they reported a message as spam "
                      "(complained)",
        "left@ex.fr": "left@ex.fr is not added back: they unsubscribed; only their own "
                      "confirmation can bring them back",
        "here@ex.fr": "here@ex.fr is already a contact (active)"}
    assert stored(lists) == before


def test_edit_sets_fields_and_records_each_list_joined_or_left(lists: Database) -> None:
    with lists.session() as session:
        add_contact(session, "a@ex.fr", FIELDS, ["lettre", "elus"], "Forum")
    with lists.session() as session:
        edited = edit_contact(session, "A@ex.fr", ["territory=Grenoble", "role=",
                                                   "attr.secteur=emploi"],
                              ["agenda", "lettre"], ["elus"])
    assert (edited.changed, edited.added, edited.removed) == (
        ["territory", "role", "attr.secteur"], ["agenda"], ["elus"])
    with lists.session(write=False) as session:
        anne = find_contact(session, "a@ex.fr")
        assert (anne.territory, anne.territory_key, anne.role, anne.attributes) == (
            "Grenoble", "grenoble", None, {"secteur": "emploi"})
        assert lists_of(session, anne.id) == ["agenda", "lettre"]
    assert events(lists, "a@ex.fr")[2:] == [
        ("manual", "command", "agenda", "Les rendez-vous du centre"),
        ("list_unsubscribe", "command", "elus", None)]


@pytest.mark.parametrize(("settings", "add", "remove", "said"), [
    (["email=b@ex.fr"], [], [], "unknown field 'email' in --set 'email=b@ex.fr'"),
    (["territoire=Lyon"], [], [], "unknown field 'territoire' in --set 'territoire=Lyon'"),
    (["territory"], [], [], "cannot read --set 'territory'"),
    (["role=" + "r" * 256], [], [], "role: 256 characters, at most 255"),
    (["role=x"], ["lettres"], [], "unknown list 'lettres'"),
    (["role=x"], ["agenda"], ["agenda"], "list agenda both added and removed"),
    (["role=x"], ["agenda"], ["elus"], "a@ex.fr is not on list elus"),
])
def test_a_bad_edit_changes_nothing(lists: Database, settings: list[str], add: list[str],
                                    remove: list[str], said: str) -> None:
    with lists.session() as session:
        add_contact(session, "a@ex.fr", FIELDS, ["lettre"], "Forum")
    before = stored(lists)
    with lists.session() as session, pytest.raises(CitesmailError) as caught:
        edit_contact(session, "a@ex.fr", settings, add, remove)
    assert caught.value.problems[0].message == said
    assert stored(lists) == before
    with lists.session(write=False) as session:
        anne = find_contact(session, "a@ex.fr")
        assert (anne.role, lists_of(session, anne.id)) == ("Déléguée du préfet", ["lettre"])


def test_a_removed_list_leaves_its_name_in_the_history(lists: Database) -> None:
    with lists.session() as session:
        add_contact(session, "a@ex.fr", {}, ["elus"], "Forum")
    with lists.session() as session:
        remove_list(session, "elus")
    with lists.session(write=False) as session:
        [event] = session.scalars(select(ConsentEvent)).all()
        assert (event.list_id, event.list_name, event.kind) == (None, "elus", "manual")
