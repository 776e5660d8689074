"""Where each campaign stands (draft, scheduled, sending n/N, sent, missed), read from
its send in the send log, and the changes a page follows while a send runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from ..db import Database
from ..delivery.sendlog import SendInfo, find_send, running_campaigns, send_counts
from ..states import SETTLED, CampaignStage, DeliveryState, SendState

_STAGES = {SendState.SCHEDULED: CampaignStage.SCHEDULED, SendState.MISSED: CampaignStage.MISSED,
           SendState.RUNNING: CampaignStage.SENDING, SendState.DONE: CampaignStage.SENT}


@dataclass(frozen=True)
class Stage:
    kind: CampaignStage
    at: datetime | None = None  # scheduled for, or sent (local time)
    settled: int = 0  # rows of the send log settled (sent, failed, skipped, unknown)
    sent: int = 0  # accepted by the server
    total: int = 0  # recipients in the send log

    @property
    def has_report(self) -> bool:
        return self.kind in (CampaignStage.SENDING, CampaignStage.SENT)


def stage_of(db: Database | None, campaign: str, tz: ZoneInfo) -> Stage:
    send = find_send(db, campaign) if db is not None else None
    if send is None:
        return Stage(CampaignStage.DRAFT)
    kind = _STAGES[send.state]
    if kind in (CampaignStage.SCHEDULED, CampaignStage.MISSED):
        return Stage(kind, _local(send.scheduled_at, tz))
    counts = send_counts(db, send.id) if db is not None else {}
    return Stage(kind, _local(_when(send), tz), sum(counts[str(s)] for s in SETTLED),
                 counts[DeliveryState.SENT], send.recipients)


def _when(send: SendInfo) -> datetime | None:
    return send.finished_at if send.state == SendState.DONE else send.started_at


def _local(value: datetime | None, tz: ZoneInfo) -> datetime | None:
    return value.astimezone(tz) if value is not None else None


class SendWatch:
    """The stages of the campaigns being sent, for a page that follows them: `changes()`
    answers those that changed since it was last asked, including a send that ended."""

    def __init__(self, db: Database, tz: ZoneInfo) -> None:
        self.db, self.tz = db, tz
        self.shown: dict[str, Stage] = {}

    def changes(self) -> dict[str, Stage]:
        followed = set(running_campaigns(self.db)) | {
            slug for slug, stage in self.shown.items() if stage.kind == CampaignStage.SENDING}
        now = {slug: stage_of(self.db, slug, self.tz) for slug in sorted(followed)}
        changed = {slug: stage for slug, stage in now.items() if self.shown.get(slug) != stage}
        self.shown.update(now)
        return changed
