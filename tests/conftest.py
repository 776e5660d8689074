"""Shared fixtures: a workspace on disk, the CLI runner, campaign writing helpers."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from citesmail.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "campaigns"
REPLAY = "2023-06-12-replay-cites-de-l-emploi"
EVENT = "2027-01-19-invitation-emploi-des-jeunes"
NEWSLETTER = "2026-12-15-lettre-decembre"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with the example config and the three example campaigns; cwd inside it."""
    ws = tmp_path / "ws"
    (ws / "campaigns").mkdir(parents=True)
    (ws / "templates").mkdir()
    shutil.copy(ROOT / "config.example.toml", ws / "config.toml")
    for example in EXAMPLES.glob("*.md"):
        shutil.copy(example, ws / "campaigns" / example.name)
    monkeypatch.chdir(ws)
    for name in ("CITESMAIL_SECRET", "CITESMAIL_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return ws


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, prog_name="citesmail")


MINIMAL_REPLAY = textwrap.dedent("""
    +++
    kind = "replay"
    subject = "Replay"
    preheader = "Le replay"
    title = "Un titre"

    [event]
    starts = 2023-06-12T14:00:00

    [replay]
    video_url = "https://example.org/video"
    +++
    Bonjour {{ recipient.first_name | default("à tous") }},
    """).lstrip("\n")
