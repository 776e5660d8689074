"""docs/cli.md says what the commands are: regenerate it when they change."""

from __future__ import annotations

import runpy

from tests.conftest import ROOT


def test_the_command_reference_is_up_to_date() -> None:
    made = runpy.run_path(str(ROOT / "scripts" / "cli_reference.py"))["markdown"]()
    written = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert written == made, ("docs/cli.md differs from the commands: run "
                             ".venv/bin/python scripts/cli_reference.py > docs/cli.md")


def test_the_reference_names_every_command_and_exit_status() -> None:
    written = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    from citesmail.cli import COMMANDS

    for name in COMMANDS:
        assert f"### `citesmail {name}`" in written
    for status in ("| 0 |", "| 1 |", "| 2 |", "| 130 |"):
        assert status in written
