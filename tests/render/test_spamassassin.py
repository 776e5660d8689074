"""The example emails as `citesmail render` writes them score at most 0.0 in SpamAssassin.

Local tests only (-L): Debian's shipped rules, no network, no sa-update.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EVENT, NEWSLETTER, REPLAY, run

EXAMPLES = [REPLAY, EVENT, NEWSLETTER]
# One machine-readable line per message, in the report that -t appends (a header's value
# ends the line: it keeps its newline).
REPORT = "SPAMASSASSIN-RESULT score=_SCORE_ tests=_TESTSSCORES(,)_ id=_HEADER(Message-ID)_"
RESULT = re.compile(r"^SPAMASSASSIN-RESULT score=(?P<score>-?[\d.]+) tests=(?P<tests>\S*) "
                    r"id=<(?P<id>[^>]+)>$", re.MULTILINE)


def spamassassin_scores(messages: list[Path], home: Path) -> dict[str, tuple[float, str]]:
    """Message-ID -> (score, rules hit with their points), all messages in one process."""
    command = shutil.which("spamassassin")
    if command is None:
        message = "spamassassin is missing: apt-get install spamassassin (scripts/test.sh does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        [command, "-t", "-L", "-x", "--cf", "dns_available no", "--cf", "use_bayes 0",
         "--cf", "clear_report_template", "--cf", f"report {REPORT}",
         *map(str, messages)],
        capture_output=True, text=True, env={**os.environ, "HOME": str(home)}, timeout=300)
    assert done.returncode == 0, done.stderr
    return {match["id"]: (float(match["score"]), match["tests"].replace(",", ", "))
            for match in RESULT.finditer(done.stdout)}


def test_the_examples_score_at_most_zero(workspace: Path, tmp_path: Path) -> None:
    for slug in EXAMPLES:
        result = run("render", slug, "-o", "out")
        assert result.exit_code == 0, result.output
    messages = [workspace / "out" / f"{slug}.eml" for slug in EXAMPLES]
    assert all("DKIM-Signature" not in path.read_text(encoding="utf-8") for path in messages)
    scores = spamassassin_scores(messages, tmp_path / "home")
    assert len(scores) == len(EXAMPLES), scores
    for slug in EXAMPLES:
        [(score, tests)] = [found for key, found in scores.items() if key.startswith(slug)]
        assert score <= 0.0, f"{slug}: {score} points from {tests}"
