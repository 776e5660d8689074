"""`forms snippet` and `contacts resubscribe`."""

from __future__ import annotations

from pathlib import Path

from bs4 import BeautifulSoup

from tests.conftest import run


def test_snippet_posts_to_serve_with_the_lists(workspace: Path) -> None:
    assert run("lists", "add", "actu", "--public", "--title", "Actualités").exit_code == 0
    assert run("lists", "add", "emploi", "--public").exit_code == 0
    assert run("lists", "add", "interne").exit_code == 0
    printed = run("forms", "snippet", "emploi", "actu",
                  env={"CITESMAIL_UNSUBSCRIBE_BASE_URL": "https://lettres.centre.example"})
    assert printed.exit_code == 0, printed.output
    form = BeautifulSoup(printed.stdout, "html.parser").form
    assert form is not None and form["action"] == "https://lettres.centre.example/s/emploi"
    boxes = form.find_all("input", attrs={"name": "lists"})
    assert [(b["value"], b.has_attr("checked")) for b in boxes] == [
        ("emploi", True), ("actu", False)]
    assert form.find("input", attrs={"name": "website"}) is not None
    assert form.find("input", attrs={"name": "consent", "required": True}) is not None
    refused = run("forms", "snippet", "actu", "interne")
    assert refused.exit_code == 1
    assert "interne is private" in refused.stderr and "lists edit interne --public" in \
        refused.stderr
    unknown = run("forms", "snippet", "actus")
    assert unknown.exit_code == 1 and "actu" in unknown.stderr


def test_resubscribe_queues_a_confirmation(workspace: Path) -> None:
    (workspace / "c.csv").write_text("email\nleft@example.org\nhere@example.org\n",
                                     encoding="utf-8")
    assert run("contacts", "import", "c.csv").exit_code == 0
    assert run("contacts", "unsubscribe", "left@example.org").exit_code == 0
    queued = run("contacts", "resubscribe", "left@example.org")
    assert queued.exit_code == 0 and "confirmation email queued" in queued.stdout
    assert "status:        unsubscribed" in run("contacts", "show", "left@example.org").stdout
    again = run("contacts", "resubscribe", "left@example.org")
    assert again.exit_code == 1 and "less than 10 minutes ago" in again.stderr
    active = run("contacts", "resubscribe", "here@example.org")
    assert active.exit_code == 1 and "already active" in active.stderr
    unknown = run("contacts", "resubscribe", "nobody@example.org")
    assert unknown.exit_code == 1 and "no contact with address" in unknown.stderr
