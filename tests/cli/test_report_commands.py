"""citesmail report: the table of campaigns and one campaign's report, as text, CSV and
JSON, after a real send over SMTP and an inbox import (tests/reports/scenario.py)."""

# ruff: noqa: F811 (each test takes the fixture `sent` imported from scenario.py)

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tests.conftest import EVENT, REPLAY, run
from tests.reports.scenario import Sent, sent  # noqa: F401 (the fixture the tests take)
from tests.reports.test_data import add_measurements

KEYS = {"campaign", "subject", "segment", "state", "started_at", "finished_at", "recipients",
        "states", "delivered", "delivered_percent", "retried", "deferred", "failed",
        "bounced_percent", "bounced_hard", "bounced_soft", "contacts_bounced", "unknown",
        "skipped", "unsubscribed", "complaints", "web_views", "opened", "measured",
        "clicks_mode", "clicks", "automated_clicks", "links", "accepted_per_hour",
        "clicks_per_hour"}


def test_json_has_every_number(sent: Sent) -> None:
    add_measurements(sent)
    result = run("report", REPLAY, "--format", "json", env=sent.env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == KEYS
    assert (data["campaign"], data["recipients"], data["unsubscribed"], data["complaints"]) \
        == (REPLAY, 11, 2, 2)
    assert data["states"]["sent"] == 6 and data["failed"]["policy"] == 2
    assert data["links"][0] == {"number": 1, "url": "https://example.org/video", "clicks": 52,
                                "automated": 6, "people": 2}
    assert all(set(link) >= {"url", "clicks", "automated"} for link in data["links"])


def test_csv_parses_back(sent: Sent) -> None:
    add_measurements(sent)
    result = run("report", REPLAY, "--format", "csv", env=sent.env)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    values = {(row["section"], row["name"]): row["value"] for row in rows}
    assert values[("delivery", "recipients")] == "11"
    assert values[("states", "failed")] == "4"
    assert values[("failed", "address")] == "2"
    assert values[("people", "complaints")] == "2"
    links = [row for row in rows if row["section"] == "link"]
    assert [(r["name"], r["value"], r["automated"], r["people"]) for r in links][1] == \
        ("https://example.org/diapositives.pdf", "6", "1", "0")
    table = run("report", "--format", "csv", env=sent.env)
    (line,) = list(csv.DictReader(io.StringIO(table.stdout)))
    assert (line["campaign"], line["recipients"], line["delivered_percent"],
            line["clicks"]) == (REPLAY, "11", "54.5", "58")


def test_text_report_and_table(sent: Sent) -> None:
    result = run("report", REPLAY, env={**sent.env, "COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    # Its links were counted (clicks = "aggregate"), and nobody has clicked yet.
    assert any(line.split() == ["0", "0", "all", "links"] for line in lines), "\n".join(lines)
    assert any(line.split() == ["recipients", "11", "100.0", "%"] for line in lines), lines
    assert any(line.split() == ["policy", "or", "spam", "2", "18.2", "%"] for line in lines)
    assert all(len(line) <= 100 for line in lines)
    narrow = run("report", env={**sent.env, "COLUMNS": "100"})
    assert all(len(line) <= 100 for line in narrow.stdout.splitlines())
    table = run("report", env={**sent.env, "COLUMNS": "160"})
    header, row = table.stdout.splitlines()
    assert header.split()[:2] == ["campaign", "date"]
    assert row.startswith(REPLAY) and row.split()[-4:] == ["36.4", "%", "2", "0"]


def test_errors_are_one_line(sent: Sent) -> None:
    result = run("report", "replay-cite", env=sent.env)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: unknown campaign 'replay-cite' — did you mean")
    assert len(result.stderr.splitlines()) == 1
    only_file = run("report", EVENT, env=sent.env)
    assert only_file.stderr == (f"error: campaign '{EVENT}' has not been sent: it is only a "
                                f"file — send it with: citesmail send {EVENT}\n")


def test_without_a_database_nothing_is_created(workspace: Path) -> None:
    table = run("report")
    assert table.exit_code == 0 and table.stdout == "no campaign has been sent yet\n"
    result = run("report", EVENT)
    assert result.exit_code == 1 and "it is only a file" in result.stderr
    assert not list(workspace.glob("*.db"))
