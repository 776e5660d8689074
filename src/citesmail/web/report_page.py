"""What the studio's report page shows of a campaign that was sent (or is being sent)."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ..db import Database
from ..delivery.sendlog import find_send, send_counts
from ..states import CampaignStage
from .stages import Stage, stage_of


@dataclass(frozen=True)
class Report:
    campaign: str
    stage: Stage
    counts: dict[str, int]  # the send log's rows per state


def campaign_report(db: Database, campaign: str, tz: ZoneInfo) -> Report | None:
    """None when the campaign has not started sending."""
    stage = stage_of(db, campaign, tz)
    send = find_send(db, campaign)
    if send is None or stage.kind not in (CampaignStage.SENDING, CampaignStage.SENT):
        return None
    return Report(campaign, stage, send_counts(db, send.id))
