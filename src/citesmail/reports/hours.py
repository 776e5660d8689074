"""Hours as both databases count them: a timestamp cut to its hour in SQL (so that a
timeline is a GROUP BY), read back as an aware UTC datetime."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func
from sqlalchemy.orm import InstrumentedAttribute, Session

from ..db import is_postgresql


def hour_of(session: Session, column: InstrumentedAttribute[datetime | None]
            ) -> ColumnElement[object]:
    """The hour (UTC) a stored timestamp falls in; timestamps are stored as naive UTC."""
    if is_postgresql(session):
        return func.date_trunc("hour", column)
    return func.strftime("%Y-%m-%d %H:00:00", column)


def read_hour(value: object) -> datetime:
    """What hour_of gave: text on SQLite, a naive datetime on PostgreSQL."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime), value
    return moment.replace(tzinfo=UTC)
