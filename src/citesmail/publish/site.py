"""Which campaigns the site publishes, and in which order.

A campaign is published once its send is started or scheduled (the `sends` table), or,
with `drafts`, before that; a campaign whose front matter says `archive = false` never
is. The content always comes from the campaign file: what the site shows is what the
file says now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..campaigns import Campaign, load_campaign
from ..config import Settings
from ..states import Publication, SendState

if TYPE_CHECKING:
    from ..db import Database

_BY_SEND_STATE = {SendState.RUNNING: Publication.SENT, SendState.DONE: Publication.SENT,
                  SendState.SCHEDULED: Publication.SCHEDULED}


@dataclass(frozen=True)
class Entry:
    """A published campaign: its file, how it stands, and its dates (UTC, to the second)."""

    campaign: Campaign
    state: Publication
    published: datetime  # its send's start (or time), else the file's last change
    updated: datetime  # the later of `published` and the file's last change

    @property
    def slug(self) -> str:
        return self.campaign.slug


@dataclass(frozen=True)
class _SendDates:
    state: Publication
    when: datetime


def _sends(db: Database | None) -> dict[str, _SendDates]:
    """The campaigns with a send that went or will go, and the send's date."""
    if db is None:
        return {}
    # Here, not at the top: a workspace with no database yet (drafts only) publishes
    # without importing SQLAlchemy and the models, a quarter of a cold publish's CPU.
    from sqlalchemy import select

    from ..db import Send

    query = select(Send.campaign, Send.state, Send.started_at, Send.scheduled_at,
                   Send.created_at)
    found: dict[str, _SendDates] = {}
    with db.session(write=False) as session:
        for campaign, state, started, scheduled, created in session.execute(query):
            publication = _BY_SEND_STATE.get(SendState(state))
            if publication is not None:
                found[campaign] = _SendDates(publication, _second(started or scheduled
                                                                  or created))
    return found


def _second(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def _changed_at(path: Path) -> datetime:
    return _second(datetime.fromtimestamp(path.stat().st_mtime, UTC))


@dataclass(frozen=True)
class Source:
    """A campaign file the site may publish, before it is read: its bytes (what the
    cache keys on), how its send stands, and its dates."""

    path: Path
    data: bytes | None  # None: it could not be read (reading it again says why)
    state: Publication
    published: datetime
    updated: datetime

    @property
    def slug(self) -> str:
        return self.path.stem

    def entry(self, settings: Settings) -> Entry | None:
        """The campaign read and validated; None when it says `archive = false`. From
        the bytes the cache keys on: a file changed meanwhile is not cached under the
        key of its older bytes (and is not read twice)."""
        campaign = load_campaign(self.path, default_lang=settings.campaigns.lang,
                                 tz=settings.tz, read=self.data)
        if not campaign.archive:
            return None
        return Entry(campaign, self.state, self.published, self.updated)


def select_sources(settings: Settings, db: Database | None, *,
                   drafts: bool = False) -> list[Source]:
    """The campaign files with a send (and, with `drafts`, the others), by name."""
    folder = settings.campaigns_dir
    paths = sorted(folder.glob("*.md")) if folder.is_dir() else []
    sends = _sends(db)
    sources = []
    for path in paths:
        send = sends.get(path.stem)
        if send is None and not drafts:
            continue  # a draft's file is not even read: it may be half-written
        changed = _changed_at(path)
        published = send.when if send else changed
        sources.append(Source(path, _bytes(path), send.state if send else Publication.DRAFT,
                              published, max(published, changed)))
    return sources


def _bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None  # reading it again says why (load_campaign's located error)
