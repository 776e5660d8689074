"""Reports said three ways: text for a terminal (aligned columns), CSV for a spreadsheet,
JSON for a program. Each function takes the dataclasses of data.py and returns a str."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from ..tables import GAP, cut, fit, terminal_width
from .data import CampaignLine, CampaignReport, HourCount
from .reasons import LABELS, Reason

NOT_MEASURED = "no click measurement for this campaign (sent before links were counted)"
NOT_COUNTED = ('clicks were not counted for this campaign ([tracking] clicks = "off" when it '
               "was sent)")


class Format(StrEnum):
    TEXT = "text"
    CSV = "csv"
    JSON = "json"


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment is not None else "-"


def _percent(value: float | None) -> str:
    return f"{value:.1f} %" if value is not None else "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], width: int) -> list[str]:
    """Columns that fit `width`; numbers to the right, the last column (a name or a URL)
    narrowed first when the terminal is too narrow."""
    cells = [[str(value) for value in row] for row in [header, *rows]]
    numeric = [bool(rows) and all(_is_number(row[i]) for row in rows)
               for i in range(len(header))]
    widths = fit([max(len(row[i]) for row in cells) for i in range(len(header))], width)
    return [GAP.join(cut(value, w).rjust(w) if numeric[i] else cut(value, w).ljust(w)
                     for i, (value, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in cells]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) or (isinstance(value, str) and (
        value in ("-", "") or value.removesuffix(" %").replace(".", "", 1).isdigit()))


# -- the list of campaigns ---------------------------------------------------------------


LINE_COLUMNS = ("campaign", "date", "segment", "recipients", "delivered %", "bounced %",
                "unsubscribed", "clicks")


def _line_values(line: CampaignLine) -> list[object]:
    return [line.campaign, f"{line.date:%Y-%m-%d}" if line.date else "-",
            line.segment or "-", line.recipients,
            _percent(line.delivered_percent), _percent(line.bounced_percent),
            line.unsubscribed, "-" if line.clicks is None else line.clicks]


def lines_text(lines: Sequence[CampaignLine], width: int | None = None) -> str:
    if not lines:
        return "no campaign has been sent yet\n"
    rows = [_line_values(line) for line in lines]
    return "\n".join(_table(LINE_COLUMNS, rows, width or terminal_width())) + "\n"


LINE_FIELDS = ["campaign", "date", "segment", "recipients", "delivered", "delivered_percent",
               "failed", "bounced_percent", "unsubscribed", "clicks"]


def _line_dict(line: CampaignLine) -> dict[str, Any]:
    return {"campaign": line.campaign, "date": _iso(line.date), "segment": line.segment,
            "recipients": line.recipients, "delivered": line.delivered,
            "delivered_percent": line.delivered_percent, "failed": line.failed,
            "bounced_percent": line.bounced_percent, "unsubscribed": line.unsubscribed,
            "clicks": line.clicks}


def lines_csv(lines: Sequence[CampaignLine]) -> str:
    rows = [_line_dict(line) for line in lines]
    return _csv(LINE_FIELDS, rows)


def lines_json(lines: Sequence[CampaignLine]) -> str:
    return json.dumps([_line_dict(line) for line in lines], indent=2, ensure_ascii=False) + "\n"


# -- one campaign -----------------------------------------------------------------------


def report_dict(report: CampaignReport) -> dict[str, Any]:
    """Every number of the report, as JSON writes it (times in ISO 8601, UTC)."""
    return {
        "campaign": report.campaign, "subject": report.subject, "segment": report.segment,
        "state": str(report.state), "started_at": _iso(report.started_at),
        "finished_at": _iso(report.finished_at), "recipients": report.recipients,
        "states": report.states, "delivered": report.delivered,
        "delivered_percent": report.delivered_percent, "retried": report.retried,
        "deferred": report.deferred, "failed": report.failed,
        "bounced_percent": report.bounced_percent, "bounced_hard": report.bounced_hard,
        "bounced_soft": report.bounced_soft, "contacts_bounced": report.contacts_bounced,
        "unknown": report.unknown, "skipped": report.skipped,
        "unsubscribed": report.unsubscribed, "complaints": report.complaints,
        "web_views": report.web_views, "opened": report.opened,
        "measured": report.measured, "clicks_mode": report.clicks_mode,
        "clicks": report.clicks,
        "automated_clicks": report.automated_clicks,
        "links": [{"number": link.number, "url": link.url, "clicks": link.clicks,
                   "automated": link.automated, "people": link.people}
                  for link in report.links],
        "accepted_per_hour": _hours(report.accepted_per_hour),
        "clicks_per_hour": _hours(report.clicks_per_hour),
    }


def report_json(report: CampaignReport) -> str:
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False) + "\n"


CSV_COLUMNS = ["section", "name", "value", "automated", "people"]


def report_csv(report: CampaignReport) -> str:
    """One row per number: (section, name, value); a link's row also has its automated
    clicks and its people."""
    data = report_dict(report)
    rows: list[dict[str, Any]] = [
        {"section": "campaign", "name": name, "value": data[name]}
        for name in ("campaign", "subject", "segment", "state", "started_at", "finished_at")]
    rows += [{"section": "delivery", "name": name, "value": data[name]}
             for name in ("recipients", "delivered", "retried", "deferred", "bounced_hard",
                          "bounced_soft", "contacts_bounced", "unknown", "skipped")]
    rows += [{"section": "states", "name": k, "value": v} for k, v in report.states.items()]
    rows += [{"section": "failed", "name": k, "value": v} for k, v in report.failed.items()]
    rows += [{"section": "people", "name": name, "value": data[name]}
             for name in ("unsubscribed", "complaints", "web_views", "opened")]
    rows += [{"section": "link", "name": link.url, "value": link.clicks,
              "automated": link.automated, "people": link.people} for link in report.links]
    for section in ("accepted_per_hour", "clicks_per_hour"):
        rows += [{"section": section, "name": hour["hour"], "value": hour["count"]}
                 for hour in data[section]]
    return _csv(CSV_COLUMNS, rows)


def report_text(report: CampaignReport, width: int | None = None) -> str:
    width = width or terminal_width()
    out = [f"campaign  {report.campaign}", f"subject   {report.subject}",
           f"segment   {report.segment or '-'}",
           f"send      {report.state}, started {_when(report.started_at)}, "
           f"finished {_when(report.finished_at)}", "", "Delivery"]
    out += _indent(_table(("", "messages", "%"), _funnel_rows(report), width - 2))
    out += ["", "People"]
    out += _indent(_table(("", "people"), [
        ("unsubscribed through this campaign", report.unsubscribed),
        ("complaints (marked as spam)", report.complaints),
        ("contacts marked bounced", report.contacts_bounced),
        ("opened (people who agreed to be measured)", report.opened),
        ("web-view visits", report.web_views)], width - 2))
    out += ["", "Links"]
    if not report.measured:
        out.append(f"  {NOT_MEASURED if report.clicks_mode is None else NOT_COUNTED}")
    else:
        rows = [(link.clicks, link.automated, "-" if link.people is None else link.people,
                 link.url) for link in report.links]
        rows.append((report.clicks, report.automated_clicks, "", "all links"))
        out += _indent(_table(("clicks", "automated", "people", "link"), rows, width - 2))
    out += _hours_text("Messages accepted per hour (UTC)", report.accepted_per_hour, width)
    if report.measured:
        out += _hours_text("Clicks per hour (UTC)", report.clicks_per_hour, width)
    return "\n".join(out) + "\n"


def _funnel_rows(report: CampaignReport) -> list[tuple[str, int, str]]:
    whole = report.recipients

    def row(label: str, count: int) -> tuple[str, int, str]:
        return (label, count, _percent(round(100 * count / whole, 1) if whole else None))

    failed = report.states["failed"]
    rows = [row("recipients", whole), row("delivered (accepted, not bounced)",
                                          report.delivered),
            row("  after a retry", report.retried), row("deferred, still retrying",
                                                        report.deferred),
            row("failed", failed)]
    rows += [row(f"  {LABELS[Reason(reason)]}", n) for reason, n in report.failed.items()]
    rows += [row("  bounced later, hard (address)", report.bounced_hard),
             row("  bounced later, soft (other reasons)", report.bounced_soft),
             row("unknown (answer lost)", report.unknown),
             row("skipped (left before their turn)", report.skipped)]
    return rows


def _hours_text(title: str, hours: Sequence[HourCount], width: int) -> list[str]:
    if not hours:
        return ["", title, "  none"]
    return ["", title, *_indent(_table(("hour", "count"),
                                       [(_when(h.hour), h.count) for h in hours], width - 2))]


def _indent(lines: list[str]) -> list[str]:
    return [f"  {line}".rstrip() for line in lines]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _hours(hours: Sequence[HourCount]) -> list[dict[str, Any]]:
    return [{"hour": h.hour.isoformat(), "count": h.count} for h in hours]


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def render_lines(lines: Sequence[CampaignLine], form: Format) -> str:
    return {Format.TEXT: lines_text, Format.CSV: lines_csv, Format.JSON: lines_json}[form](lines)


def render_report(report: CampaignReport, form: Format) -> str:
    return {Format.TEXT: report_text, Format.CSV: report_csv,
            Format.JSON: report_json}[form](report)
