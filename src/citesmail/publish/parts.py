"""What one campaign gives the site: its page, its Atom entry's content, its invitation,
and the few facts the index pages and the feeds list it by.

A Part is all that build.py needs of a campaign, so a campaign whose Part is in the
cache (cache.py) is neither read nor rendered again. It goes to the cache as JSON and
comes back only through `part_from_json`, which checks every field: a stored value of
the wrong shape is a miss, never a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..config import Settings
from ..render.calendar import invitation
from ..render.labels import Dates
from ..states import Publication
from .pages import Urls, campaign_page
from .site import Source


@dataclass(frozen=True)
class Part:
    slug: str
    kind: str
    lang: str
    title: str
    lede: str
    state: Publication
    published: datetime
    updated: datetime
    starts: datetime | None  # the event's, for an invitation or a replay
    ends: datetime | None
    when: str | None  # the event's dates, as the index card says them
    published_text: str  # the send's date, as the index card says it
    page: str  # the campaign's page (HTML)
    content: str  # the page's content alone: the Atom entry's
    invitation: str | None  # the invitation's iCalendar text, for an event

    def is_upcoming(self, now: datetime) -> bool:
        """An invitation whose event has not ended yet."""
        if self.kind != "event" or self.starts is None:
            return False
        return (self.ends or self.starts) >= now


def render_part(source: Source, settings: Settings, urls: Urls) -> Part | None:
    """The campaign read and rendered; None when it says `archive = false`."""
    entry = source.entry(settings)
    if entry is None:
        return None
    campaign, event = entry.campaign, entry.campaign.event
    dates = Dates(campaign.lang, settings.tz)
    starts = event.starts if event else None
    ends = event.ends if event else None
    page = campaign_page(entry, settings, urls)
    return Part(
        slug=entry.slug, kind=campaign.kind, lang=campaign.lang, title=campaign.title,
        lede=campaign.lede or "", state=entry.state, published=entry.published,
        updated=entry.updated, starts=starts, ends=ends,
        when=dates.span(starts, ends) if starts else None,
        published_text=dates.date(entry.published), page=page.html, content=page.content,
        # The invitation's DTSTAMP on the site: when its file last changed, not now.
        invitation=invitation(campaign, settings, stamp=entry.updated))


_DATES = ("published", "updated", "starts", "ends")
_TEXTS = ("slug", "kind", "lang", "title", "lede", "published_text", "page", "content")
_OPTIONAL_TEXTS = ("when", "invitation")


def part_to_json(part: Part) -> dict[str, Any]:
    # Not dataclasses.asdict: it deep-copies every field, a third of saving the cache.
    data = {name: getattr(part, name) for name in Part.__dataclass_fields__}
    for name in _DATES:
        data[name] = None if data[name] is None else data[name].isoformat()
    data["state"] = str(part.state)
    return data


def part_from_json(data: Any) -> Part | None:
    """The Part a cache row holds, or None when anything in it is not what it should be."""
    if not isinstance(data, dict) or set(data) != set(Part.__dataclass_fields__):
        return None
    try:
        fields: dict[str, Any] = {name: _text(data[name]) for name in _TEXTS}
        fields.update({name: _optional(data[name], _text) for name in _OPTIONAL_TEXTS})
        fields.update({name: _optional(data[name], _moment) for name in _DATES})
        fields["state"] = Publication(data["state"])
    except (TypeError, ValueError):
        return None
    if fields["published"] is None or fields["updated"] is None:
        return None
    return Part(**fields)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _moment(value: Any) -> datetime:
    moment = datetime.fromisoformat(_text(value))
    if moment.tzinfo is None:
        raise ValueError(value)
    return moment


def _optional(value: Any, convert: Any) -> Any:
    return None if value is None else convert(value)
