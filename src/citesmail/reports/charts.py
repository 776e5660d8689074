"""A campaign report's charts as SVG drawn on the server (leather): no JavaScript, nothing
fetched, works offline. Each chart comes with its text alternative (a sentence and the
data as rows of a small table), so that a page can offer both; the SVG itself says what
it shows (role="img", <title>, <desc>), scales to its container (a viewBox, no fixed
size) and uses colours that keep their contrast on white. The words, numbers and hours
are those of a ChartLanguage: English and UTC by default, the studio's language there."""

from __future__ import annotations

import hashlib
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import leather

from .chart_language import ENGLISH, ChartLanguage
from .data import CampaignReport, HourCount
from .reasons import Reason

SVG = "http://www.w3.org/2000/svg"
ET.register_namespace("", SVG)

# leather's theme is module-wide: its light grey labels (2.6:1 on its background) are
# made dark enough to read (10:1 on white); the bars are dark blue (8.6:1; WCAG asks 3:1
# for graphics), the grid lines mid grey (4.5:1). Fonts: what the page has, not Monaco.
BAR = "#1f4e79"
FONT = "DejaVu Sans, Arial, sans-serif"
for _name, _value in (("background_color", "#ffffff"), ("title_color", "#1a1a1a"),
                      ("tick_color", "#767676"), ("label_color", "#3d3d3d"),
                      ("axis_title_color", "#3d3d3d"), ("title_font_family", FONT),
                      ("tick_font_family", FONT), ("axis_title_font_family", FONT),
                      ("legend_font_family", FONT), ("zero_color", "#3d3d3d")):
    setattr(leather.theme, _name, _value)
# Small enough that its words stay legible when a phone shows it 360 px wide.
WIDTH, HEIGHT = 480, 270
LABEL = 24  # characters of a label on the chart (the alternative has it whole)
COLUMN_LABELS = 3  # labels under the columns at most: more would overlap

Formatter = Callable[[object, int, int], str]


@dataclass(frozen=True)
class Alternative:
    """What a chart shows, for who cannot see it: a sentence and a small table."""

    sentence: str
    header: tuple[str, str]
    rows: list[tuple[str, int]]


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str  # the <svg> element, ready to put in a page
    alternative: Alternative


def _draw(title: str, alternative: Alternative, language: ChartLanguage, *,
          across: bool = False, shorten: Callable[[str], str] | None = None) -> Chart:
    """Columns (or bars `across`, for long labels) of the alternative's rows, counted on
    an axis of whole numbers written in the language. The title is the SVG's <title>,
    not drawn: the page shows it as the heading of the chart."""
    chart = leather.Chart()
    rows = alternative.rows or [(language.gettext("none"), 0)]
    shorten = shorten or _short
    ticks = _whole_ticks(max(n for _, n in rows))
    count_axis = {"ticks": ticks, "tick_formatter": _numbers(language)}
    if across:
        chart.add_x_scale(0, ticks[-1])
        chart.add_x_axis(**count_axis)
        chart.add_bars([(n, label) for label, n in reversed(rows)], fill_color=BAR)
        chart.add_y_axis(tick_formatter=_some_labels(1, shorten))
    else:
        chart.add_y_scale(0, ticks[-1])
        chart.add_y_axis(**count_axis)
        chart.add_x_axis(tick_formatter=_some_labels(len(rows), shorten))
        chart.add_columns([(label, n) for label, n in rows], fill_color=BAR)
    root = ET.fromstring(chart.to_svg(width=WIDTH, height=HEIGHT))
    _marks_only(root, "left" if across else "bottom")
    return Chart(title, _accessible(root, title, alternative.sentence), alternative)


def _whole_ticks(top: int) -> list[int]:
    """0 to at least `top` in steps of 1, 2, 5, 10, 20, 50…, 6 ticks at most: counts are
    whole numbers."""
    top, step = max(top, 1), 1
    while math.ceil(top / step) > 5:
        step = step * 5 // 2 if str(step)[0] == "2" else step * 2
    return list(range(0, step * math.ceil(top / step) + 1, step))


def _numbers(language: ChartLanguage) -> Formatter:
    def number(value: object, index: int, count: int) -> str:
        return language.number(Decimal(str(value)))
    return number


def _some_labels(columns: int, shorten: Callable[[str], str]) -> Formatter:
    """Every label when few; else one in `every`, so that none overlaps the next."""
    every = math.ceil(columns / COLUMN_LABELS)

    def label(value: object, index: int, count: int) -> str:
        return shorten(str(value)) if index % every == 0 else ""
    return label


def _short(label: str) -> str:
    return label if len(label) <= LABEL else label[:LABEL - 1] + "…"


def _link_label(url: str) -> str:
    """The end of an address tells links apart: 'https://example.org/a/b.pdf' ->
    'example.org/a/b.pdf', or '…/a/b.pdf' when long."""
    label = url.split("://", 1)[-1].removeprefix("www.")
    return label if len(label) <= LABEL else "…" + label[-(LABEL - 1):]


def _marks_only(root: ET.Element, side: str) -> None:
    """On the axis of labels (hours, links, reasons), a small mark at each label instead
    of a line across the chart: such lines would cross the bars."""
    for axis in root.iter(f"{{{SVG}}}g"):
        if axis.get("class") != f"axis {side}":
            continue
        for line in axis.iter(f"{{{SVG}}}line"):
            if side == "bottom":  # from the top of the chart to below its foot
                line.set("y1", str(float(line.get("y2", "0")) - leather.theme.tick_size))
            else:  # from left of the axis to the right of the chart
                line.set("x2", "0")


def _accessible(root: ET.Element, title: str, sentence: str) -> str:
    """The chart named and described for assistive technologies, scaled by its page."""
    # The same chart gets the same id (a page may hold several charts).
    ident = "chart-" + hashlib.sha256(f"{title}\n{sentence}".encode()).hexdigest()[:12]
    name, described = ET.Element(f"{{{SVG}}}title"), ET.Element(f"{{{SVG}}}desc")
    name.text, described.text = title, sentence
    name.set("id", f"{ident}-title")
    described.set("id", f"{ident}-desc")
    root.insert(0, described)
    root.insert(0, name)
    for fixed in ("width", "height"):  # the page sizes it; the viewBox keeps its shape
        root.attrib.pop(fixed, None)
    root.set("viewBox", f"0 0 {WIDTH} {HEIGHT}")
    root.set("role", "img")
    root.set("aria-labelledby", f"{ident}-title {ident}-desc")
    return ET.tostring(root, encoding="unicode")


@dataclass(frozen=True)
class _Sentences:
    """What an hour-by-hour chart says: when it has no hour, one, or several."""

    empty: str
    one: str
    several: str


def _hourly(hours: list[HourCount], title: str, counted: str, says: _Sentences,
            language: ChartLanguage) -> Chart:
    """Columns of counts per hour, hours in the language's zone."""
    zone = {"zone": language.zone_name}
    sentence = says.empty
    if hours:
        busiest = max(hours, key=lambda h: h.count)
        sentence = (says.one if len(hours) == 1 else says.several) % {
            "total": language.number(sum(h.count for h in hours)),
            "first": language.hour(hours[0].hour), "last": language.hour(hours[-1].hour),
            "most": language.number(busiest.count), "busiest": language.hour(busiest.hour)}
    rows = [(language.hour(h.hour), h.count) for h in hours]
    header = (language.gettext("hour (%(zone)s)") % zone, counted)
    return _draw(title % zone, Alternative(sentence, header, rows), language)


def accepted_over_time(report: CampaignReport, language: ChartLanguage = ENGLISH) -> Chart:
    """Messages the servers accepted, per hour of the send."""
    _, ngettext = language.gettext, language.ngettext
    total = sum(h.count for h in report.accepted_per_hour)
    says = _Sentences(
        _("No message accepted yet."),
        ngettext("%(total)s message accepted, all in the hour from %(first)s.",
                 "%(total)s messages accepted, all in the hour from %(first)s.", total),
        ngettext("%(total)s message accepted from %(first)s to %(last)s; the most, "
                 "%(most)s, in the hour from %(busiest)s.",
                 "%(total)s messages accepted from %(first)s to %(last)s; the most, "
                 "%(most)s, in the hour from %(busiest)s.", total))
    return _hourly(report.accepted_per_hour, _("Messages accepted per hour (%(zone)s)"),
                   _("messages accepted"), says, language)


def clicks_over_time(report: CampaignReport, language: ChartLanguage = ENGLISH) -> Chart:
    """Clicks by people (link scanners apart), per hour."""
    _, ngettext = language.gettext, language.ngettext
    total = sum(h.count for h in report.clicks_per_hour)
    says = _Sentences(
        _("No click yet.") if report.measured else _("No click measurement for this campaign."),
        ngettext("%(total)s click by people, all in the hour from %(first)s.",
                 "%(total)s clicks by people, all in the hour from %(first)s.", total),
        ngettext("%(total)s click by people from %(first)s to %(last)s; the most, "
                 "%(most)s, in the hour from %(busiest)s.",
                 "%(total)s clicks by people from %(first)s to %(last)s; the most, "
                 "%(most)s, in the hour from %(busiest)s.", total))
    return _hourly(report.clicks_per_hour, _("Clicks per hour (%(zone)s)"), _("clicks"), says,
                   language)


def clicks_per_link(report: CampaignReport, language: ChartLanguage = ENGLISH) -> Chart:
    """Clicks by people on each counted link, the most clicked first."""
    _, links = language.gettext, report.links
    rows = [(link.url, link.clicks) for link in links]
    if not report.measured:
        sentence = _("No click measurement for this campaign.")
    elif not links:
        sentence = _("No link in this campaign.")
    elif not report.clicks:
        sentence = language.ngettext("No click yet on its %(links)s counted link.",
                                     "No click yet on its %(links)s counted links.",
                                     len(links)) % {"links": language.number(len(links))}
    else:
        top = max(links, key=lambda link: link.clicks)
        sentence = language.ngettext(
            "%(clicks)s clicks by people on %(links)s link; the most, %(most)s, on %(url)s.",
            "%(clicks)s clicks by people on %(links)s links; the most, %(most)s, on %(url)s.",
            len(links)) % {"clicks": language.number(report.clicks),
                           "links": language.number(len(links)),
                           "most": language.number(top.clicks), "url": top.url}
    return _draw(_("Clicks per link"), Alternative(sentence, (_("link"), _("clicks")), rows),
                 language, across=True, shorten=_link_label)


def reason_label(reason: Reason, language: ChartLanguage = ENGLISH) -> str:
    """A reason in a few words, short enough for the chart's labels."""
    _ = language.gettext
    return {Reason.ADDRESS: _("unknown address"), Reason.MAILBOX_FULL: _("mailbox full"),
            Reason.POLICY: _("policy or spam filter"), Reason.OTHER: _("other")}[reason]


def bounce_reasons(report: CampaignReport, language: ChartLanguage = ENGLISH) -> Chart:
    """Failed messages by reason (refused at send time or bounced later)."""
    _ = language.gettext
    rows = [(reason_label(Reason(reason), language), n) for reason, n in report.failed.items()]
    failed = sum(n for _label, n in rows)
    numbers = {"failed": language.number(failed),
               "total": language.number(report.recipients),
               "named": ", ".join(f"{label} ({language.number(n)})" for label, n in rows if n)}
    if failed:
        sentence = language.ngettext("%(failed)s of %(total)s message failed: %(named)s.",
                                     "%(failed)s of %(total)s messages failed: %(named)s.",
                                     report.recipients) % numbers
    else:
        sentence = language.ngettext("The message did not fail.",
                                     "None of the %(total)s messages failed.",
                                     report.recipients) % numbers
    return _draw(_("Failed messages by reason"),
                 Alternative(sentence, (_("reason"), _("messages")), rows), language,
                 across=True)
