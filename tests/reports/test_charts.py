"""reports/charts.py: well-formed SVG, named and described, without script, scaled by its
page, with a text alternative that carries the same numbers as the report; in English and
UTC by default, in the words, numbers and hours of a ChartLanguage (the studio's French)."""

# ruff: noqa: F811 (each test takes the fixture `sent` imported from scenario.py)

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from citesmail.db import Send
from citesmail.reports import campaign_report
from citesmail.reports.chart_language import ChartLanguage
from citesmail.reports.charts import (
    Alternative,
    Chart,
    accepted_over_time,
    bounce_reasons,
    clicks_over_time,
    clicks_per_link,
)
from citesmail.web.i18n import translations
from tests.conftest import REPLAY
from tests.reports.scenario import Sent, sent  # noqa: F401 (the fixture the tests take)
from tests.reports.test_data import add_measurements

SVG = "{http://www.w3.org/2000/svg}"
TITLES = {accepted_over_time: "Messages accepted per hour (UTC)",
          clicks_over_time: "Clicks per hour (UTC)", clicks_per_link: "Clicks per link",
          bounce_reasons: "Failed messages by reason"}
FRENCH = ChartLanguage(translations("fr"), "fr", ZoneInfo("Europe/Paris"))
NNBSP = "\u202f"  # narrow no-break space: French thousands, English AM/PM


def check_svg(chart: Chart, title: str) -> ET.Element:
    root = ET.fromstring(chart.svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    first, second = list(root)[:2]
    assert (first.tag, first.text) == (f"{SVG}title", title) and chart.title == title
    assert (second.tag, second.text) == (f"{SVG}desc", chart.alternative.sentence)
    assert root.get("aria-labelledby") == f"{first.get('id')} {second.get('id')}"
    assert not list(root.iter(f"{SVG}script"))
    # no fixed size: the page scales it, the viewBox keeps its shape
    assert (root.get("viewBox"), root.get("width"), root.get("height")) == (
        "0 0 480 270", None, None)
    assert "javascript" not in chart.svg.lower() and "http://" not in chart.svg.replace(
        "http://www.w3.org/", "")
    return root


def tick_labels(root: ET.Element) -> list[str]:
    return [text.text or "" for tick in root.iter(f"{SVG}g") if tick.get("class") == "tick"
            for text in tick.iter(f"{SVG}text")]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_each_chart_is_svg_with_its_alternative(sent: Sent) -> None:
    add_measurements(sent)
    report = campaign_report(sent.db, REPLAY)
    reasons = bounce_reasons(report)
    check_svg(reasons, "Failed messages by reason")
    assert reasons.alternative.rows == [("unknown address", 2), ("mailbox full", 0),
                                        ("policy or spam filter", 2), ("other", 0)]
    assert reasons.alternative.sentence == \
        "4 of 11 messages failed: unknown address (2), policy or spam filter (2)."
    links = clicks_per_link(report)
    labels = tick_labels(check_svg(links, "Clicks per link"))
    assert links.alternative.rows[0] == ("https://example.org/video", 52)
    # on the chart, addresses without their scheme, long ones by their end
    assert "example.org/video" in labels and "…le.org/diapositives.pdf" in labels
    assert links.alternative.sentence == \
        "58 clicks by people on 3 links; the most, 52, on https://example.org/video."
    clicks = clicks_over_time(report)
    root = check_svg(clicks, "Clicks per hour (UTC)")
    am, pm = f"{NNBSP}AM", f"{NNBSP}PM"  # CLDR's English hours
    assert clicks.alternative.rows == [(f"Mar 2 at 9:00{am}", 40), (f"Mar 2 at 10:00{am}", 17),
                                       (f"Mar 2 at 2:00{pm}", 1)]
    assert clicks.alternative.sentence == f"58 clicks by people from Mar 2 at 9:00{am} to " \
        f"Mar 2 at 2:00{pm}; the most, 40, in the hour from Mar 2 at 9:00{am}."
    # counts on an axis of whole numbers (leather alone would write 0, 0.5, 1, …)
    assert sorted((label for label in tick_labels(root) if label[:1].isdigit()), key=int) \
        == ["0", "10", "20", "30", "40"]
    accepted = accepted_over_time(report)
    check_svg(accepted, "Messages accepted per hour (UTC)")
    assert sum(n for _, n in accepted.alternative.rows) == 8
    assert accepted.alternative.sentence.startswith("8 messages accepted")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_charts_in_french_with_the_workspace_hours(sent: Sent) -> None:
    add_measurements(sent)
    report = campaign_report(sent.db, REPLAY)
    clicks = clicks_over_time(report, FRENCH)
    check_svg(clicks, "Clics par heure (Europe/Paris)")
    # 09:00 UTC is 10:00 in Paris in March
    assert clicks.alternative.rows == [("2 mars à 10:00", 40), ("2 mars à 11:00", 17),
                                       ("2 mars à 15:00", 1)]
    assert clicks.alternative.header == ("heure (Europe/Paris)", "clics")
    assert clicks.alternative.sentence == "58 clics de personnes du 2 mars à 10:00 au " \
        "2 mars à 15:00 ; le plus grand nombre, 40, dans l'heure du 2 mars à 10:00."
    check_svg(accepted_over_time(report, FRENCH), "Messages acceptés par heure (Europe/Paris)")
    links = clicks_per_link(report, FRENCH)
    check_svg(links, "Clics par lien")
    assert links.alternative.sentence == "58 clics de personnes sur 3 liens ; le plus " \
        "grand nombre, 52, sur https://example.org/video."
    many = replace(report, recipients=12345)
    reasons = bounce_reasons(many, FRENCH)
    root = check_svg(reasons, "Messages en échec par raison")
    assert reasons.alternative.sentence == f"4 messages sur 12{NNBSP}345 ont échoué : " \
        "adresse inconnue (2), règle ou anti-spam (2)."
    assert ("boîte pleine", 0) in reasons.alternative.rows
    assert "boîte pleine" in tick_labels(root)
    assert bounce_reasons(replace(report, failed={r: 0 for r in report.failed}),
                          FRENCH).alternative.sentence == "Aucun des 11 messages n'a échoué."


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_labels_under_many_columns_do_not_overlap(sent: Sent) -> None:
    """24 hours of clicks: one label in eight under the columns, every hour in the table."""
    report = campaign_report(sent.db, REPLAY)
    hours = [replace(report.accepted_per_hour[0], count=n + 1) for n in range(24)]
    hours = [replace(h, hour=h.hour.replace(hour=n)) for n, h in enumerate(hours)]
    chart = clicks_over_time(replace(report, clicks_per_hour=hours))
    shown = [label for label in tick_labels(ET.fromstring(chart.svg))
             if re.fullmatch(r"\w{3} \d+ at .+", label)]
    assert len(shown) == 3 and len(chart.alternative.rows) == 24
    # a short mark at each hour, no line across the columns
    marks = [line for axis in ET.fromstring(chart.svg).iter(f"{SVG}g")
             if axis.get("class") == "axis bottom" for line in axis.iter(f"{SVG}line")]
    assert len(marks) == 24
    assert all(float(line.get("y2", "")) - float(line.get("y1", "")) == 4 for line in marks)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_charts_of_a_campaign_without_measurement(sent: Sent) -> None:
    with sent.db.session() as session:
        session.execute(update(Send).values(clicks=None))  # sent before clicks were counted
    report = campaign_report(sent.db, REPLAY)
    for make, title in TITLES.items():
        check_svg(make(report), title)
    assert clicks_per_link(report).alternative == Alternative(
        "No click measurement for this campaign.", ("link", "clicks"), [])
    assert clicks_over_time(report).alternative.sentence == \
        "No click measurement for this campaign."
