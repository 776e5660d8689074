"""Lists, contacts by hand, consent history and pending sign-ups, end to end on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from citesmail.db import Contact, open_database, utcnow
from citesmail.states import ContactStatus
from tests.conftest import run


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    return {"CITESMAIL_DATABASE_URL": f'"{db_url}"'}


def ok(*args: str, env: dict[str, str]) -> str:
    result = run(*args, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def refused(*args: str, env: dict[str, str]) -> str:
    """The one line a refused command prints (exit code 1, nothing on standard output)."""
    result = run(*args, env=env)
    assert (result.exit_code, result.stdout) == (1, ""), result.output
    [line] = result.stderr.splitlines()
    return line


def consent_lines(address: str, env: dict[str, str]) -> list[str]:
    """`contacts show`'s history, without the times."""
    shown = ok("contacts", "show", address, env=env).splitlines()
    return [line.split(" UTC ", 1)[1] for line in shown if line.startswith("consent:")]


def test_lists_are_private_unless_made_public(env: dict[str, str]) -> None:
    assert ok("lists", "add", "lettre", "--public", "--title", "La lettre",
              env=env) == "list lettre created (public)\n"
    assert ok("lists", "add", "elus", env=env) == "list elus created (private)\n"
    assert ok("lists", "edit", "elus", "--public", "--title", "Élus", env=env) == \
        "list elus saved (public)\n"
    ok("lists", "edit", "lettre", "--private", env=env)
    listed = [line.split() for line in ok("lists", env=env).splitlines()]
    assert listed == [["elus", "0", "contacts", "0", "active", "public", "Élus"],
                      ["lettre", "0", "contacts", "0", "active", "private", "La", "lettre"]]
    nothing = run("lists", "edit", "elus", env=env)
    assert nothing.exit_code == 2 and "nothing to change" in nothing.stderr
    assert refused("lists", "edit", "lettres", "--public", env=env) == (
        "error: unknown list 'lettres' — did you mean 'lettre'? (known lists: lettre, elus)")
    assert refused("lists", "add", "elus", env=env) == (
        "error: list 'elus' already exists — change it with citesmail lists edit elus")


def test_a_contact_by_hand_then_edited_then_gone_shows_its_whole_history(
        env: dict[str, str], tmp_path: Path) -> None:
    ok("lists", "add", "lettre", "--description", "La lettre mensuelle du centre de "
       "ressources, avec les rendez-vous du mois", env=env)
    ok("lists", "add", "elus", env=env)
    assert ok("contacts", "add", "bob@lyon.fr", "--first-name", "Bob", "--territory", "Lyon",
              "--list", "elus", "--consent", "Demande faite au forum du 3 mai 2024",
              env=env) == "bob@lyon.fr: added on elus\n"
    assert ok("contacts", "edit", "bob@lyon.fr", "--set", "role=Élu", "--add-list", "lettre",
              "--remove-list", "elus", env=env) == (
        "bob@lyon.fr: role set, added to lettre, removed from elus\n")
    ok("contacts", "unsubscribe", "bob@lyon.fr", env=env)
    (tmp_path / "c.csv").write_text("email\nbob@lyon.fr\n", encoding="utf-8")
    ok("contacts", "import", "c.csv", "--consent", "Liste des participants", env=env)
    assert consent_lines("bob@lyon.fr", env) == [
        "manual [elus] (command): Demande faite au forum du 3 mai 2024",
        "manual [lettre] (command): La lettre mensuelle du centre de ressources, avec …",
        "list_unsubscribe [elus] (command)",
        "unsubscribe (command)",
        "import (c.csv:2): Liste des participants"]
    shown = ok("contacts", "show", "bob@lyon.fr", env=env)
    assert "status:        unsubscribed" in shown and "role:          Élu" in shown
    ok("contacts", "delete", "--yes", "bob@lyon.fr", env=env)
    assert refused("contacts", "add", "bob@lyon.fr", "--consent", "x", env=env) == (
        "error: bob@lyon.fr was erased (suppression list): it is not added back")


def test_bad_input_by_hand_is_one_line_and_stores_nothing(env: dict[str, str]) -> None:
    ok("lists", "add", "lettre", env=env)
    ok("contacts", "add", "anne@lyon.fr", "--consent", "Forum", env=env)
    assert refused("contacts", "add", "x@y", "--consent", "x", env=env) == (
        "error: invalid address 'x@y': The part after the @-sign is not valid. It should "
        "have a period.")
    assert refused("contacts", "add", "z@lyon.fr", "--list", "lettres", "--consent", "x",
                   env=env).startswith("error: unknown list 'lettres' — did you mean 'lettre'?")
    assert refused("contacts", "add", "ANNE@lyon.fr", "--consent", "x", env=env) == (
        "error: anne@lyon.fr is already a contact (active) — change it with citesmail "
        "contacts edit anne@lyon.fr")
    assert refused("contacts", "edit", "anne@lyon.fr", "--set", "ville=Lyon",
                   env=env).startswith("error: unknown field 'ville' in --set 'ville=Lyon'")
    assert refused("contacts", "edit", "anne@lyon.fr", "--remove-list", "lettre",
                   env=env).startswith("error: anne@lyon.fr is not on list lettre")
    no_consent = run("contacts", "add", "z@lyon.fr", env=env)
    assert no_consent.exit_code == 2 and "Missing option '--consent'" in no_consent.stderr
    listed = ok("contacts", "list", "--format", "csv", env=env).splitlines()
    assert [line.split(",")[0] for line in listed] == ["email", "anne@lyon.fr"]
    assert consent_lines("anne@lyon.fr", env) == ["manual (command): Forum"]


def test_purge_pending_forgets_old_sign_ups_only(env: dict[str, str], db_url: str) -> None:
    for address in ("old@ex.fr", "new@ex.fr", "kept@ex.fr"):
        ok("contacts", "add", address, "--consent", "x", env=env)
    db = open_database(db_url)
    with db.session() as session:
        for address, days in (("old@ex.fr", 4), ("new@ex.fr", 2), ("kept@ex.fr", 40)):
            session.execute(update(Contact).where(Contact.email == address).values(
                status=ContactStatus.PENDING if address != "kept@ex.fr" else "active",
                updated_at=utcnow() - timedelta(days=days)))
    db.close()
    assert ok("contacts", "purge-pending", env=env) == (
        "0 pending contacts purged (unconfirmed for more than 7 days)\n")
    shorter = {**env, "CITESMAIL_SUBSCRIBE_PENDING_DAYS": "3"}
    assert ok("contacts", "purge-pending", env=shorter) == (
        "1 pending contact purged (unconfirmed for more than 3 days)\n")
    listed = ok("contacts", "list", "--format", "csv", env=env).splitlines()[1:]
    assert sorted(line.split(",")[0] for line in listed) == ["kept@ex.fr", "new@ex.fr"]
