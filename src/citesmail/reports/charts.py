"""A campaign report's charts as SVG drawn on the server (leather): no JavaScript, nothing
fetched, works offline. Each chart comes with its text alternative (a sentence and the
data as rows of a small table), so that a page can offer both; the SVG itself says what
it shows (role="img", <title>, <desc>) and uses colours that keep their contrast on white.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime

import leather

from .data import CampaignReport, HourCount
from .reasons import LABELS, Reason

SVG = "http://www.w3.org/2000/svg"
ET.register_namespace("", SVG)

# leather's theme is module-wide: its light grey labels (2.6:1 on its background) are
# made dark enough to read (10:1 on white); the bars are dark blue (8.6:1; WCAG asks 3:1
# for graphics). Fonts: what the page has, not Monaco.
BAR = "#1f4e79"
FONT = "DejaVu Sans, Arial, sans-serif"
for _name, _value in (("background_color", "#ffffff"), ("title_color", "#1a1a1a"),
                      ("tick_color", "#3d3d3d"), ("label_color", "#3d3d3d"),
                      ("axis_title_color", "#3d3d3d"), ("title_font_family", FONT),
                      ("tick_font_family", FONT), ("axis_title_font_family", FONT),
                      ("legend_font_family", FONT), ("zero_color", "#3d3d3d")):
    setattr(leather.theme, _name, _value)
WIDTH, HEIGHT = 720, 360
LABEL = 40  # characters of a link's address on the chart (the alternative has it whole)


@dataclass(frozen=True)
class Alternative:
    """What a chart shows, for who cannot see it: a sentence and a small table."""

    sentence: str
    header: tuple[str, str]
    rows: list[tuple[str, int]]


@dataclass(frozen=True)
class Chart:
    svg: str  # the <svg> element, ready to put in a page
    alternative: Alternative


def _hour(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:00}"


def _draw(title: str, alternative: Alternative, *, across: bool = False) -> Chart:
    """Columns (or bars `across`, for long labels) of the alternative's rows."""
    chart = leather.Chart(title)
    rows = alternative.rows or [("none", 0)]
    if across:
        chart.add_bars([(n, _short(label)) for label, n in reversed(rows)], fill_color=BAR)
    else:
        chart.add_columns([(label, n) for label, n in rows], fill_color=BAR)
    return Chart(_accessible(chart.to_svg(width=WIDTH, height=HEIGHT), title,
                             alternative.sentence), alternative)


def _short(label: str) -> str:
    return label if len(label) <= LABEL else label[:LABEL - 1] + "…"


def _accessible(markup: str, title: str, sentence: str) -> str:
    """The chart named and described for assistive technologies, scaled by its page."""
    root = ET.fromstring(markup)
    # The same chart gets the same id (a page may hold several charts).
    ident = "chart-" + hashlib.sha256(f"{title}\n{sentence}".encode()).hexdigest()[:12]
    name, described = ET.Element(f"{{{SVG}}}title"), ET.Element(f"{{{SVG}}}desc")
    name.text, described.text = title, sentence
    name.set("id", f"{ident}-title")
    described.set("id", f"{ident}-desc")
    root.insert(0, described)
    root.insert(0, name)
    root.set("viewBox", f"0 0 {WIDTH} {HEIGHT}")
    root.set("role", "img")
    root.set("aria-labelledby", f"{ident}-title {ident}-desc")
    return ET.tostring(root, encoding="unicode")


def _over_time(report: CampaignReport, hours: list[HourCount], what: str,
               title: str) -> Chart:
    total = sum(h.count for h in hours)
    if hours:
        busiest = max(hours, key=lambda h: h.count)
        sentence = (f"{total} {what} over {len(hours)} hour(s) from {_hour(hours[0].hour)} "
                    f"to {_hour(hours[-1].hour)} UTC; the most, {busiest.count}, in the hour "
                    f"from {_hour(busiest.hour)}.")
    else:
        sentence = f"No {what} for {report.campaign}."
    rows = [(_hour(h.hour), h.count) for h in hours]
    return _draw(title, Alternative(sentence, ("hour (UTC)", what), rows))


def accepted_over_time(report: CampaignReport) -> Chart:
    """Messages the servers accepted, per hour of the send."""
    return _over_time(report, report.accepted_per_hour, "messages accepted",
                      "Messages accepted per hour (UTC)")


def clicks_over_time(report: CampaignReport) -> Chart:
    """Clicks by people (link scanners apart), per hour."""
    return _over_time(report, report.clicks_per_hour, "clicks", "Clicks per hour (UTC)")


def clicks_per_link(report: CampaignReport) -> Chart:
    rows = [(link.url, link.clicks) for link in report.links]
    if not report.measured:
        sentence = "No click measurement for this campaign."
    elif not report.links:
        sentence = "This campaign has no counted links."
    else:
        top = max(report.links, key=lambda link: link.clicks)
        sentence = (f"{report.clicks} clicks on {len(report.links)} link(s); the most, "
                    f"{top.clicks}, on {top.url}.")
    return _draw("Clicks per link", Alternative(sentence, ("link", "clicks"), rows),
                 across=True)


def bounce_reasons(report: CampaignReport) -> Chart:
    """Failed messages by reason (refused at send time or bounced later)."""
    rows = [(LABELS[Reason(reason)], n) for reason, n in report.failed.items()]
    failed = sum(n for _, n in rows)
    if failed:
        named = ", ".join(f"{label} {n}" for label, n in rows if n)
        sentence = f"{failed} of {report.recipients} messages failed: {named}."
    else:
        sentence = f"None of the {report.recipients} messages failed."
    return _draw("Failed messages by reason",
                 Alternative(sentence, ("reason", "messages"), rows))
