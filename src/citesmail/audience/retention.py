"""A person's own clicks and opens are kept for [tracking] retention, then deleted; the
counts per link and per hour (which name nobody) stay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..db import ClickEvent, OpenEvent, changed, utcnow


@dataclass(frozen=True)
class Purged:
    clicks: int
    opens: int

    def summary(self, dry_run: bool = False) -> str:
        verb = "would be deleted" if dry_run else "deleted"
        return (f"{self.clicks} click{'s' if self.clicks != 1 else ''} and "
                f"{self.opens} open{'s' if self.opens != 1 else ''} {verb}")


def span(retention: timedelta) -> str:
    """'395 days' for whole days (how retention is written), else the timedelta."""
    days = retention.days
    if retention == timedelta(days=days):
        return f"{days} day{'s' if days != 1 else ''}"
    return str(retention)


def purge_measured(session: Session, retention: timedelta, *, now: datetime | None = None,
                   dry_run: bool = False) -> Purged:
    """Delete the click and open events older than `retention` (`dry_run`: only count
    them); returns how many of each."""
    before = (now or utcnow()) - retention
    if dry_run:
        return Purged(
            session.scalar(select(func.count()).where(ClickEvent.at < before)) or 0,
            session.scalar(select(func.count()).where(OpenEvent.at < before)) or 0)
    return Purged(changed(session, delete(ClickEvent).where(ClickEvent.at < before)),
                  changed(session, delete(OpenEvent).where(OpenEvent.at < before)))
