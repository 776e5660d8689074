"""Golden files: the examples rendered for the sample recipient, byte for byte.

Regenerate after an intended change of templates or examples with:
    CITESMAIL_REGEN_GOLDEN=1 .venv/bin/pytest tests/test_golden.py
then review `git diff tests/golden`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import EVENT, NEWSLETTER, REPLAY, run

GOLDEN = Path(__file__).resolve().parent / "golden"
REGENERATE = os.environ.get("CITESMAIL_REGEN_GOLDEN") == "1"


@pytest.mark.parametrize("slug", [REPLAY, EVENT, NEWSLETTER])
def test_example_matches_golden_files(workspace: Path, slug: str) -> None:
    result = run("render", slug, "-o", "out")
    assert result.exit_code == 0, result.output
    for suffix in ("html", "txt"):
        produced = (workspace / "out" / f"{slug}.{suffix}").read_text(encoding="utf-8")
        golden = GOLDEN / f"{slug}.{suffix}"
        if REGENERATE:
            golden.write_text(produced, encoding="utf-8")
        assert golden.exists(), "regenerate the golden files (see module docstring)"
        assert produced == golden.read_text(encoding="utf-8"), (
            f"{golden.name} differs; if the change is intended, regenerate (see module docstring)"
        )
