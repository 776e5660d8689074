"""A workspace whose replay was sent and whose invitation is scheduled, to the contacts
below; the newsletter stays a draft."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import EVENT, REPLAY, run

BASE = "https://www.example.net/annonces/"
# People whose names and addresses must never reach the site.
CONTACTS = [("ysolde.quarantotto@example.org", "Ysolde", "Quarantotto", "Mairie de Brézolles"),
            ("barnabe.vlastimil@example.com", "Barnabé", "Vlastimil", "Asso Kerlouan"),
            ("oriane.zabulon@example.fr", "Oriane", "Zabulon", "")]


def with_sends(workspace: Path) -> None:
    rows = "\n".join(",".join(contact) for contact in CONTACTS)
    (workspace / "people.csv").write_text(
        f"email,first_name,last_name,organization\n{rows}\n", encoding="utf-8")
    for command in (("lists", "add", "reseau"),
                    ("contacts", "import", "people.csv", "--list", "reseau"),
                    ("segments", "add", "partenaires-aura", "--list", "reseau"),
                    ("segments", "add", "emploi-insertion", "--list", "reseau"),
                    ("send", REPLAY, "--yes"),
                    ("schedule", EVENT, "--at", "2030-01-05 09:00")):
        done = run(*command)
        assert done.exit_code == 0, (command, done.output)


def publish(*args: str) -> str:
    done = run("publish", "-o", "site", "--base-url", BASE, *args)
    assert done.exit_code == 0, done.output
    return done.stdout


def mtimes(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns
            for path in folder.rglob("*") if path.is_file()}
