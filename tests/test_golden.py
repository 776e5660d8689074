"""Golden files: the examples rendered for the sample recipient, byte for byte.

Regenerate after an intended change of templates or examples with:
    CITESMAIL_REGEN_GOLDEN=1 .venv/bin/pytest tests/test_golden.py
then review `git diff tests/golden`.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest

from tests.conftest import EVENT, NEWSLETTER, REPLAY, run

GOLDEN = Path(__file__).resolve().parent / "golden"
REGENERATE = os.environ.get("CITESMAIL_REGEN_GOLDEN") == "1"


@pytest.mark.parametrize("slug", [REPLAY, EVENT, NEWSLETTER])
def test_example_matches_golden_files(workspace: Path, slug: str) -> None:
    result = run("render", slug, "-o", "out")
    assert result.exit_code == 0, result.output
    for suffix in ("html", "txt", "eml"):
        produced = (workspace / "out" / f"{slug}.{suffix}").read_text(encoding="utf-8")
        if suffix == "eml":
            produced = _stable(produced)
        golden = GOLDEN / f"{slug}.{suffix}"
        if REGENERATE:
            golden.write_text(produced, encoding="utf-8")
        assert golden.exists(), "regenerate the golden files (see module docstring)"
        assert produced == golden.read_text(encoding="utf-8"), (
            f"{golden.name} differs; if the change is intended, regenerate (see module docstring)"
        )


def _stable(eml: str) -> str:
    """The message without what changes on every run: date, Message-ID, MIME boundaries,
    and the invitation's DTSTAMP (its base64 parts are decoded to show the ICS)."""
    for boundary in sorted(set(re.findall(r'boundary="([^"]+)"', eml)), key=len,
                           reverse=True):  # the outer one holds the inner one's name
        eml = eml.replace(boundary, "OUTER" if boundary.endswith("_mixed") else "BOUNDARY")
    eml = re.sub(r"(?m)^Date: .*$", "Date: DATE", eml)
    eml = re.sub(r"(?m)^Message-ID: <[\w.-]+\.[0-9a-f]+@", "Message-ID: <ID@", eml)

    def decoded(match: re.Match[str]) -> str:
        ics = base64.b64decode(match.group(2)).decode("utf-8").replace("\r\n", "\n")
        return match.group(1) + re.sub(r"(?m)^DTSTAMP:.*$", "DTSTAMP:STAMP", ics)

    return re.sub(r"(Content-Transfer-Encoding: base64\n\n)([A-Za-z0-9+/=\n]+?)(?=\n--)",
                  decoded, eml)
