"""The Quick start's first command leaves the user one line away from `citesmail`: it
says how to put it on the PATH, and that line works in a fresh shell."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from citesmail import __version__
from tests.conftest import ROOT


def test_the_demo_says_how_to_put_citesmail_on_the_path() -> None:
    demo = (ROOT / "scripts" / "demo.sh").read_text(encoding="utf-8")
    assert 'echo "    . .venv/bin/activate"' in demo


def test_activating_the_environment_in_a_fresh_shell_finds_citesmail(tmp_path: Path) -> None:
    environment = Path(sys.prefix)  # .venv, which scripts/test.sh and demo.sh make
    fresh = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    before = subprocess.run(["bash", "-c", "command -v citesmail"], env=fresh,
                            capture_output=True, text=True)
    assert before.returncode != 0  # not on the PATH of a fresh shell...
    after = subprocess.run(["bash", "-c", f". {environment}/bin/activate && citesmail "
                            "--version"], env=fresh, capture_output=True, text=True,
                           cwd=tmp_path)
    assert after.returncode == 0, after.stderr  # ...one line later, it is
    assert after.stdout.strip() == f"citesmail, version {__version__}"
