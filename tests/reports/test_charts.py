"""reports/charts.py: well-formed SVG, named and described, without script, with a text
alternative that carries the same numbers as the report."""

# ruff: noqa: F811 (each test takes the fixture `sent` imported from scenario.py)

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import update

from citesmail.db import Send
from citesmail.reports import campaign_report
from citesmail.reports.charts import (
    Alternative,
    Chart,
    accepted_over_time,
    bounce_reasons,
    clicks_over_time,
    clicks_per_link,
)
from tests.conftest import REPLAY
from tests.reports.scenario import Sent, sent  # noqa: F401 (the fixture the tests take)
from tests.reports.test_data import add_measurements

SVG = "{http://www.w3.org/2000/svg}"
TITLES = {accepted_over_time: "Messages accepted per hour (UTC)",
          clicks_over_time: "Clicks per hour (UTC)", clicks_per_link: "Clicks per link",
          bounce_reasons: "Failed messages by reason"}


def check_svg(chart: Chart, title: str) -> ET.Element:
    root = ET.fromstring(chart.svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    first, second = list(root)[:2]
    assert (first.tag, first.text) == (f"{SVG}title", title)
    assert (second.tag, second.text) == (f"{SVG}desc", chart.alternative.sentence)
    assert root.get("aria-labelledby") == f"{first.get('id')} {second.get('id')}"
    assert not list(root.iter(f"{SVG}script"))
    assert root.get("viewBox") == "0 0 720 360"
    assert "javascript" not in chart.svg.lower() and "http://" not in chart.svg.replace(
        "http://www.w3.org/", "")
    return root


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_each_chart_is_svg_with_its_alternative(sent: Sent) -> None:
    add_measurements(sent)
    report = campaign_report(sent.db, REPLAY)
    reasons = bounce_reasons(report)
    check_svg(reasons, "Failed messages by reason")
    assert reasons.alternative.rows == [("address", 2), ("mailbox full", 0),
                                        ("policy or spam", 2), ("other", 0)]
    assert reasons.alternative.sentence == \
        "4 of 11 messages failed: address 2, policy or spam 2."
    links = clicks_per_link(report)
    check_svg(links, "Clicks per link")
    assert links.alternative.rows[0] == ("https://example.org/video", 52)
    assert links.alternative.sentence == \
        "58 clicks on 3 link(s); the most, 52, on https://example.org/video."
    clicks = clicks_over_time(report)
    check_svg(clicks, "Clicks per hour (UTC)")
    assert clicks.alternative.rows == [("2026-03-02 09:00", 40), ("2026-03-02 10:00", 17),
                                       ("2026-03-02 14:00", 1)]
    accepted = accepted_over_time(report)
    check_svg(accepted, "Messages accepted per hour (UTC)")
    assert sum(n for _, n in accepted.alternative.rows) == 8
    assert accepted.alternative.sentence.startswith("8 messages accepted over ")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_charts_of_a_campaign_without_measurement(sent: Sent) -> None:
    with sent.db.session() as session:
        session.execute(update(Send).values(clicks=None))  # sent before clicks were counted
    report = campaign_report(sent.db, REPLAY)
    for make, title in TITLES.items():
        check_svg(make(report), title)
    assert clicks_per_link(report).alternative == Alternative(
        "No click measurement for this campaign.", ("link", "clicks"), [])
    assert clicks_over_time(report).alternative.sentence == f"No clicks for {REPLAY}."
