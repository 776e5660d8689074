"""Faults during a send: a failed commit, a journal line that cannot be written, a full
disk. Whatever fails, resuming (and `--resend-unknown`, which the tool suggests) mails
every recipient exactly once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPLAY as CAMPAIGN
from tests.conftest import ROOT, fill, run
from tests.smtp_server import SmtpServer

RECIPIENTS = 300
RUNNER = Path(__file__).resolve().parent / "fault_runner.py"
SECRET = "f" * 40


def smtp_env() -> dict[str, str]:
    return {"CITESMAIL_DELIVERY_TRANSPORT": "smtp", "CITESMAIL_SMTP_HOST": "127.0.0.1",
            "CITESMAIL_SMTP_SECURITY": "none", "CITESMAIL_SECRET": SECRET,
            "CITESMAIL_DELIVERY_RETRY_DELAYS": "[1]", "CITESMAIL_DELIVERY_CONNECTIONS": "4"}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with 300 contacts in a segment, ready to send the replay."""
    workspace = tmp_path_factory.mktemp("template")
    (workspace / "campaigns").mkdir()
    shutil.copy(ROOT / "config.example.toml", workspace / "config.toml")
    shutil.copy(ROOT / "campaigns" / f"{CAMPAIGN}.md", workspace / "campaigns")
    addresses = [f"p{i}@example.org" for i in range(RECIPIENTS)]
    (workspace / "c.csv").write_text("email\n" + "\n".join(addresses) + "\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workspace)
        for args in (("lists", "add", "aura"), ("contacts", "import", "c.csv", "--list", "aura"),
                     ("segments", "add", "partenaires-aura", "--list", "aura")):
            assert run(*args).exit_code == 0
    return workspace


def faulty_sends(template: Path, work: Path, kind: str, first: int,
                 last: int) -> list[dict[str, Any]]:
    result = subprocess.run([sys.executable, str(RUNNER), str(template), str(work), kind,
                             str(first), str(last)], capture_output=True, text=True,
                            env={**_environ(), **smtp_env()}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CITESMAIL_")}


def every_address_once(outcome: dict[str, Any]) -> None:
    received = outcome["received"]
    twice = sorted(a for a, n in received.items() if n > 1)
    assert not twice, f"N={outcome['n']}: {len(twice)} mailed twice, e.g. {twice[:3]}"
    assert len(received) == RECIPIENTS, f"N={outcome['n']}: {len(received)} received"


def assert_located_error(outcome: dict[str, Any], *causes: str) -> None:
    output = outcome["output"]
    assert outcome["code"] == 1, output
    assert "Traceback" not in output and any(c in output for c in causes), output
    errors = [line for line in output.splitlines() if line.startswith("error")]
    assert len(errors) == 1, output


def clean_run(template: Path, tmp_path: Path) -> dict[str, Any]:
    (clean,) = faulty_sends(template, tmp_path, "commit-once", 0, 0)
    every_address_once(clean)
    assert clean["code"] == 0 and clean["commits"] > 5, clean
    return clean


@pytest.mark.parametrize("kind", ["commit-once", "commit-from", "commit-lost"])
def test_a_failed_commit_at_any_point_mails_nobody_twice(template: Path, tmp_path: Path,
                                                         kind: str) -> None:
    commits = clean_run(template, tmp_path)["commits"]
    outcomes = faulty_sends(template, tmp_path, kind, 1, commits)
    # A send makes a few commits more or fewer from one run to the next (it records
    # results at least every 0.25 s): the last N may not be reached.
    assert all(outcome["code"] == 1 for outcome in outcomes[:commits // 2]), outcomes
    for outcome in outcomes:
        if outcome["code"]:
            assert_located_error(outcome, "the disk holding")
        assert outcome["resumed_code"] == 0, outcome["resumed"]
        # The journal settled every row: nothing is left `unknown` to send again.
        assert "unknown" not in outcome["resumed"], (outcome["n"], outcome["resumed"])
        assert "0 unknown recipient(s) queued" in outcome["again"] or \
            "sent already" in outcome["again"], outcome["again"]
        every_address_once(outcome)
        assert outcome["journals"] == [], outcome


def test_a_journal_line_that_cannot_be_written_stops_the_send(template: Path,
                                                              tmp_path: Path) -> None:
    lines = clean_run(template, tmp_path)["journal_lines"]
    picks = sorted({1, 2, 3, lines // 3, lines // 2 + 1, lines - 1, lines})
    for n in picks:
        (outcome,) = faulty_sends(template, tmp_path, "journal", n, n)
        assert_located_error(outcome, "Input/output error")
        assert outcome["resumed_code"] == 0, outcome["resumed"]
        assert "unknown" not in outcome["resumed"], (n, outcome["resumed"])
        every_address_once(outcome)


@pytest.mark.parametrize("kind", ["journal-space", "disk-full"])
def test_a_journal_that_cannot_grow_stops_before_the_next_message(template: Path,
                                                                  tmp_path: Path,
                                                                  kind: str) -> None:
    """The journal cannot grow (alone, or with the database on the same full disk: then
    only the journal tells the next run what went)."""
    lines = clean_run(template, tmp_path)["journal_lines"]
    chunks = lines * 8 // 512 + 1  # 512-byte chunks of lines of up to 8 bytes
    outcomes = faulty_sends(template, tmp_path, kind, 1, chunks)
    assert all(outcome["code"] == 1 for outcome in outcomes[:5]), outcomes[:5]
    for outcome in outcomes:
        if outcome["code"]:  # the last chunks may not be needed
            assert_located_error(outcome, "No space left on device", "the disk holding")
        assert "unknown" not in outcome["resumed"], (outcome["n"], outcome["resumed"])
        every_address_once(outcome)


def test_a_real_full_disk_stops_the_send_and_resuming_mails_everyone_once(
        template: Path, small_disk: Path) -> None:
    stopped_midway = 0
    with SmtpServer() as server, pytest.MonkeyPatch.context() as patch:
        env = {**smtp_env(), "CITESMAIL_SMTP_PORT": str(server.port)}
        for leave in (400, 480, 560, 640):  # KB left free when the send starts
            server.handler.received.clear()
            workspace = small_disk / f"ws-{leave}"
            shutil.copytree(template, workspace)
            patch.chdir(workspace)
            filler = fill(small_disk, leave * 1024)
            first = run("send", CAMPAIGN, "--yes", env=env)
            before = sum(server.handler.received.values())
            filler.unlink()
            if first.exit_code:
                assert "Traceback" not in first.output
                assert f"the disk holding {workspace}" in first.output or \
                    "No space left on device" in first.output, first.output
                stopped_midway += 0 < before < RECIPIENTS
            resumed = run("send", CAMPAIGN, "--yes", env=env)
            assert resumed.exit_code == 0, resumed.output
            assert "unknown" not in resumed.output, resumed.output
            again = run("send", CAMPAIGN, "--yes", "--resend-unknown", env=env)
            assert again.exit_code == 0, again.output
            every_address_once({"n": leave, "received": dict(server.handler.received)})
            shutil.rmtree(workspace)
    assert stopped_midway, "the disk never filled in the middle of a send"


def test_render_on_a_full_disk_leaves_no_file_behind(workspace: Path,
                                                     small_disk: Path) -> None:
    fill(small_disk, 4096)
    failed = run("render", CAMPAIGN, "-o", str(small_disk / "out"))
    assert failed.exit_code == 1
    assert failed.stderr.splitlines() == [
        f"error: cannot write {small_disk}/out/{CAMPAIGN}.html: the disk is full — free some "
        "space or choose another folder with -o"]
    assert [p.name for p in (small_disk / "out").iterdir()] == []
