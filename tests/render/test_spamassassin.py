"""The example emails as `citesmail render` writes them score at most 0.0 in SpamAssassin.

Local tests only (-L): Debian's shipped rules, no network, no sa-update.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import EVENT, NEWSLETTER, REPLAY, run
from tests.render.measure import SpamScore, spamassassin_scores

EXAMPLES = [REPLAY, EVENT, NEWSLETTER]


def scores(messages: list[Path], home: Path) -> dict[str, SpamScore]:
    try:
        return spamassassin_scores(messages, home)
    except FileNotFoundError as missing:
        message = f"{missing} (scripts/test.sh does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def test_the_examples_score_at_most_zero(workspace: Path, tmp_path: Path) -> None:
    for slug in EXAMPLES:
        result = run("render", slug, "-o", "out")
        assert result.exit_code == 0, result.output
    messages = [workspace / "out" / f"{slug}.eml" for slug in EXAMPLES]
    assert all("DKIM-Signature" not in path.read_text(encoding="utf-8") for path in messages)
    found = scores(messages, tmp_path / "home")
    assert len(found) == len(EXAMPLES), found
    for slug in EXAMPLES:
        [spam] = [score for key, score in found.items() if key.startswith(f"{slug}.")]
        assert spam.score <= 0.0, f"{slug}: {spam.score} points from {spam.described()}"
