"""What the studio's report page shows of a campaign that was sent (or is being sent):
the report of `citesmail.reports`, with its hours in the workspace's time zone, and its
charts in the studio's language."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ..db import Database
from ..errors import CitesmailError
from ..reports import CampaignReport, HourCount, campaign_report
from ..reports.chart_language import ChartLanguage
from ..reports.charts import (
    Chart,
    accepted_over_time,
    bounce_reasons,
    clicks_over_time,
    clicks_per_link,
)
from ..reports.reasons import Reason
from .i18n import translations
from .stages import Stage, stage_of

REASONS = tuple(Reason)


@dataclass(frozen=True)
class Charts:
    accepted: Chart
    clicks: Chart
    links: Chart
    reasons: Chart


@dataclass(frozen=True)
class Report:
    campaign: str
    stage: Stage
    found: CampaignReport
    accepted_per_hour: list[HourCount]  # local time
    clicks_per_hour: list[HourCount]
    charts: Charts

    @property
    def still_to_send(self) -> int:
        states = self.found.states
        return states["queued"] + states["sending"] + states["deferred"]


def studio_report(db: Database, campaign: str, tz: ZoneInfo, lang: str) -> Report | None:
    """None when the campaign has not started sending."""
    try:
        found = campaign_report(db, campaign)
    except CitesmailError:
        return None
    return Report(campaign, stage_of(db, campaign, tz), found,
                  _local(found.accepted_per_hour, tz), _local(found.clicks_per_hour, tz),
                  _charts(found, ChartLanguage(translations(lang), lang, tz)))


def _charts(found: CampaignReport, language: ChartLanguage) -> Charts:
    return Charts(accepted_over_time(found, language), clicks_over_time(found, language),
                  clicks_per_link(found, language), bounce_reasons(found, language))


def _local(hours: list[HourCount], tz: ZoneInfo) -> list[HourCount]:
    return [HourCount(h.hour.astimezone(tz), h.count) for h in hours]
