"""A misspelt segment, list, campaign or field name, in any command: the name probably
meant, then the known names nearest first. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPLAY, run


@pytest.fixture
def audience(workspace: Path, db_url: str) -> dict[str, str]:
    """Lists aura and idf-partenaires, segments partenaires-aura and elus; the env to use."""
    env = {"CITESMAIL_DATABASE_URL": f'"{db_url}"'}
    (workspace / "c.csv").write_text("email\np@example.org\n", encoding="utf-8")
    for command in (("lists", "add", "aura"), ("lists", "add", "idf-partenaires"),
                    ("contacts", "import", "c.csv", "--list", "aura"),
                    ("segments", "add", "partenaires-aura", "--list", "aura"),
                    ("segments", "add", "elus", "--where", "role=élu")):
        assert run(*command, env=env).exit_code == 0
    return env


def error_of(*args: str, env: dict[str, str]) -> str:
    result = run(*args, env=env)
    assert result.exit_code == 1
    return result.stderr


def test_a_misspelt_segment(audience: dict[str, str]) -> None:
    said = ("error: unknown segment 'partenaire-aura' — did you mean 'partenaires-aura'? "
            "(known segments: partenaires-aura, elus)\n")
    sent = error_of("send", REPLAY, "--segment", "partenaire-aura", "--yes", env=audience)
    assert sent.endswith("\n" + said)  # after a note on the development signing key
    assert error_of("segments", "show", "partenaire-aura", env=audience) == said
    assert error_of("contacts", "export", "--segment", "partenaire-aura",
                    env=audience) == said
    assert error_of("segments", "show", "nope", env=audience) == (
        "error: unknown segment 'nope' — known segments: elus, partenaires-aura\n")


def test_a_misspelt_list(audience: dict[str, str]) -> None:
    assert error_of("contacts", "list", "--list", "partenaires-idf", env=audience) == (
        "error: unknown list 'partenaires-idf' — did you mean 'idf-partenaires'? (known "
        "lists: idf-partenaires, aura)\n")
    assert error_of("segments", "add", "x", "--list", "aur", env=audience) == (
        "error: unknown list 'aur' — did you mean 'aura'? (known lists: aura, "
        "idf-partenaires)\n")


def test_a_misspelt_field(audience: dict[str, str]) -> None:
    assert error_of("segments", "add", "x", "--where", "territoire=Lyon", env=audience) == (
        "error: unknown field 'territoire' in 'territoire=Lyon' — did you mean 'territory'? "
        "(known fields: territory, organization, role, domain, lang, and attr.NAME for an "
        "imported column)\n")


def test_a_misspelt_campaign(workspace: Path) -> None:
    result = run("check", "replay-cites-de-l-emploi")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: no campaign named 'replay-cites-de-l-emploi' — did you mean "
        "'2023-06-12-replay-cites-de-l-emploi'? (known campaigns: "
        "2023-06-12-replay-cites-de-l-emploi, 2027-01-19-invitation-emploi-des-jeunes, "
        "2026-12-15-lettre-decembre)\n")
    result = run("check", "campaigns/2026-12-15-lettre-decembr.md")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "campaigns/2026-12-15-lettre-decembr.md: error: no such campaign file — did you mean "
        "'2026-12-15-lettre-decembre.md'?")
