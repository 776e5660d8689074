"""What a publish imports: only what its work needs (start-up is most of a publish with
little to render)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.publish.helpers import with_sends

_PUBLISH = ("import json, sys\nfrom citesmail.cli import main\n"
            "try:\n    main(['publish', '--drafts', '-o', 'site'])\n"
            "except SystemExit as done:\n    assert not done.code, done.code\n")


def _loaded_after_publish(workspace: Path, *packages: str) -> list[str]:
    """The modules of `packages` a publish in a new interpreter imported."""
    code = _PUBLISH + (f"print(json.dumps(sorted(m for m in sys.modules "
                       f"if m.split('.')[0] in {packages!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=workspace, check=False)
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_a_workspace_with_no_database_publishes_without_sqlalchemy(workspace: Path) -> None:
    assert not (workspace / "citesmail.db").exists()
    assert _loaded_after_publish(workspace, "sqlalchemy", "alembic") == []
    assert (workspace / "site" / "index.html").is_file()


def test_with_a_database_the_sends_are_read(workspace: Path) -> None:
    with_sends(workspace)
    assert "sqlalchemy" in _loaded_after_publish(workspace, "sqlalchemy")


def test_a_publish_with_nothing_changed_imports_no_markdown_nor_icalendar(
        workspace: Path) -> None:
    """Nothing is rendered; events.ics's head (VTIMEZONE...) is the one kept."""
    rendering = ("markdown_it", "icalendar")
    assert set(_loaded_after_publish(workspace, *rendering)) >= set(rendering)  # all
    assert _loaded_after_publish(workspace, *rendering) == []  # none
