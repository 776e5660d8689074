"""The preference centre's choices and their saving, and the lists a footer names, on
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from citesmail.audience.contacts import find_contact
from citesmail.audience.lists import add_list, lists_of, segment_lists
from citesmail.audience.manual import add_contact
from citesmail.audience.preferences import BadChoice, NotActive, preferences, save
from citesmail.audience.recipients import recipients
from citesmail.audience.segments import Definition
from citesmail.audience.status import leave
from citesmail.db import Database
from citesmail.states import ContactStatus
from tests.audience.test_manual import events


@pytest.fixture
def people(db: Database) -> Database:
    """anne on lettre, agenda and the private elus; bruno on agenda only."""
    with db.session() as session:
        add_list(session, "lettre", "La lettre", "La lettre mensuelle", public=True)
        add_list(session, "elus", "Élus", "")
        add_list(session, "agenda", "", "Les rendez-vous du centre", public=True)
        add_contact(session, "anne@example.org", {}, ["lettre", "agenda", "elus"], "oui")
        add_contact(session, "bruno@example.org", {}, ["agenda"], "oui")
    return db


def contact_id(db: Database, address: str) -> int:
    with db.session(write=False) as session:
        return find_contact(session, address).id


def test_choices_are_the_public_lists_then_the_private_ones_of_the_contact(
        people: Database) -> None:
    with people.session(write=False) as session:
        anne = preferences(session, contact_id(people, "anne@example.org"))
        bruno = preferences(session, contact_id(people, "bruno@example.org"))
        assert preferences(session, 999) is None
    assert anne is not None and bruno is not None
    assert [(c.name, c.label, c.member, c.public) for c in anne.choices] == [
        ("agenda", "agenda", True, True), ("lettre", "La lettre", True, True),
        ("elus", "Élus", True, False)]
    assert [(c.name, c.member) for c in bruno.choices] == [("agenda", True),
                                                            ("lettre", False)]
    assert bruno.may_join


def test_save_joins_and_leaves_with_events_and_keeps_private_lists(people: Database) -> None:
    anne = contact_id(people, "anne@example.org")
    with people.session() as session:
        saved = save(session, anne, ["agenda"])
    assert (saved.added, saved.removed) == ([], ["lettre"])
    bruno = contact_id(people, "bruno@example.org")
    with people.session() as session:
        saved = save(session, bruno, ["lettre"])
    assert (saved.added, saved.removed) == (["lettre"], ["agenda"])
    with people.session(write=False) as session:
        found = preferences(session, anne)
        assert found is not None
        assert [c.name for c in found.choices if c.member] == ["agenda", "elus"]
    assert events(people, "bruno@example.org")[-2:] == [
        ("list_subscribe", "serve: preference page", "lettre",
         "La lettre — La lettre mensuelle"),
        ("list_unsubscribe", "serve: preference page", "agenda", None)]
    with people.session() as session:  # the same choice again: nothing new
        assert save(session, bruno, ["lettre"]).added == []
    assert len(events(people, "bruno@example.org")) == 3


def test_only_an_active_contact_joins_and_only_offered_lists_are_taken(
        people: Database) -> None:
    bruno = contact_id(people, "bruno@example.org")
    with people.session() as session:
        leave(session, [bruno], ContactStatus.BOUNCED)
    before = events(people, "bruno@example.org")
    with people.session() as session, pytest.raises(NotActive):
        save(session, bruno, ["agenda", "lettre"])
    for chosen in (["elus"], ["nope"]):
        with people.session() as session, pytest.raises(BadChoice):
            save(session, bruno, chosen)
    with people.session() as session:  # leaving is still possible
        assert save(session, bruno, []).removed == ["agenda"]
    assert len(events(people, "bruno@example.org")) == len(before) + 1


def test_lists_of_names_the_segment_public_lists_each_contact_is_on(
        people: Database) -> None:
    anne, bruno = (contact_id(people, a) for a in ("anne@example.org", "bruno@example.org"))
    with people.session(write=False) as session:
        chosen = segment_lists(session, ["lettre", "elus", "agenda", "removed"])
        assert list(chosen.values()) == ["La lettre", "agenda"]  # private and unknown out
        assert lists_of(session, [anne, bruno], chosen) == {anne: "La lettre, agenda",
                                                            bruno: "agenda"}
        assert lists_of(session, [anne], {}) == {}
        found = [r for batch in recipients(session, Definition(["agenda", "lettre"]),
                                           batch=1) for r in batch]
        assert [(r.email, r.lists) for r in found] == [
            ("anne@example.org", "agenda, La lettre"), ("bruno@example.org", "agenda")]
        everybody = [r for batch in recipients(session, Definition()) for r in batch]
        assert [r.lists for r in everybody] == ["", ""]
