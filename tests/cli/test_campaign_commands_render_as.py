"""`citesmail render --as ADDRESS`: the message a stored contact gets, or a stranger's."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

from tests.conftest import REPLAY, run


def rendered(workspace: Path, *args: str) -> tuple[str, str, str]:
    """(message-id, html, stderr) of `render REPLAY` with `args`."""
    result = run("render", REPLAY, "-o", "out", *args)
    assert result.exit_code == 0, result.output
    eml = message_from_bytes((workspace / "out" / f"{REPLAY}.eml").read_bytes(),
                             policy=policy.default)
    html = (workspace / "out" / f"{REPLAY}.html").read_text(encoding="utf-8")
    return str(eml["Message-ID"]), html, result.stderr


def test_render_as_a_stored_contact_uses_their_names_and_links(workspace: Path) -> None:
    (workspace / "c.csv").write_text("email;prénom;nom\nzoe@lyon.fr;Zoé;Bernard\n"
                                     "anne@lyon.fr;Anne;Martin\n", encoding="utf-8")
    assert run("contacts", "import", "c.csv").exit_code == 0
    message_id, html, said = rendered(workspace, "--as", "ANNE@lyon.fr")
    assert message_id.startswith(f"<{REPLAY}.2.")  # Anne's id: her links are hers
    assert "Bonjour Anne," in html
    assert "not a contact" not in said


def test_render_as_a_stranger_says_so_and_uses_the_name_given(workspace: Path) -> None:
    (workspace / "c.csv").write_text("email\nanne@lyon.fr\n", encoding="utf-8")
    assert run("contacts", "import", "c.csv").exit_code == 0
    message_id, html, said = rendered(workspace, "--as", "Paul Durand <paul@lyon.fr>")
    assert message_id.startswith(f"<{REPLAY}.0.")
    assert "Bonjour Paul," in html
    assert "note: paul@lyon.fr is not a contact: rendered with the name given" in said


def test_render_as_without_a_database_creates_none(workspace: Path) -> None:
    _, html, said = rendered(workspace, "--as", "Paul <paul@lyon.fr>")
    assert "Bonjour Paul," in html and "is not a contact" in said
    assert not (workspace / "citesmail.db").exists()
