"""The built wheel carries the templates and skeleton: `citesmail init` works after
a plain `pip install .`, away from this repository."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPLAY, ROOT


def test_wheel_ships_templates_and_workspace_skeleton(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True, capture_output=True,
    )
    [wheel] = (tmp_path / "dist").glob("citesmail-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("base.mjml.j2", "macros.mjml.j2", "event.mjml.j2", "replay.mjml.j2",
                   "newsletter.mjml.j2", "text.txt.j2"):
        assert f"citesmail/templates/{needed}" in names
    assert "citesmail/skeleton/config.example.toml" in names
    for page in ("base", "index", "campaign", "broken", "test"):
        assert f"citesmail/web/templates/preview/{page}.html.j2" in names
    assert f"citesmail/skeleton/campaigns/{REPLAY}.md" in names
    assert "citesmail/skeleton/examples/contacts.csv" in names

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = "from citesmail.cli import main; main()"
    for args in (["init", "centre"], ["--config", "centre/config.toml", "check"],
                 ["--config", "centre/config.toml", "render", REPLAY, "-o", "centre/out"]):
        result = subprocess.run([sys.executable, "-c", code, *args], cwd=away, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    check = subprocess.run([sys.executable, "-c", "import citesmail; print(citesmail.__file__)"],
                           cwd=away, env=env, capture_output=True, text=True, check=True)
    assert check.stdout.startswith(str(site))
    assert (away / "centre" / "out" / f"{REPLAY}.eml").stat().st_size > 10_000
