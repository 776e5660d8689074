"""The site's feeds: Atom 1.0 (RFC 4287) of the announcements, an iCalendar feed of the
events to subscribe to, and the sitemap.

The Atom feed and the sitemap are Jinja templates (web/feed.xml.j2, web/sitemap.xml.j2:
autoescaped, so every text is XML-escaped): two short, fixed formats did not earn a
dependency. Their dates come from the sends and the files, never from the clock, so that
nothing changes when nothing was changed. The iCalendar feed is made by icalendar, from
the very invitations the emails carry (same UIDs), kept as their text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from .. import __version__
from ..config import Settings
from ..render.calendar import zone_component
from ..render.environment import environment, render_template
from ..states import Publication
from .pages import Urls
from .parts import Part

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the feed's date while nothing is published
_TZID = re.compile(r"^[A-Z-]+;(?:[^:\r\n]*;)?TZID=([^:;\r\n]+)", re.M)
# Events the calendar feed keeps once they are over: a month of them.
RECENT = timedelta(days=31)
# (key, make) -> the text kept under key, or made by make() (and kept)
Kept = Callable[[str, Callable[[], str]], str]


def _atom_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def atom_feed(parts: list[Part], settings: Settings, urls: Urls) -> str:
    """One entry per published campaign (drafts too, when published), with its full
    content (its page's)."""
    env = environment(settings.templates_dir)
    return render_template(env, "web/feed.xml.j2", {
        "org": settings.organization, "lang": settings.campaigns.lang,
        "id": urls.base, "feed_url": urls.file("feed.xml"), "home": urls.base,
        "updated": _atom_date(max((p.updated for p in parts), default=EPOCH)),
        "version": __version__,
        "entries": [{"title": p.title, "url": urls.page(p.slug),
                     "published": _atom_date(p.published), "updated": _atom_date(p.updated),
                     "summary": p.lede, "content": p.content, "lang": p.lang, "kind": p.kind}
                    for p in parts],
    })


def calendar_feed(parts: list[Part], settings: Settings, now: datetime,
                  kept: Kept = lambda _key, make: make()) -> str:
    """The events still to come and those of the last month, in the organisation's zone
    (with its VTIMEZONE); each VEVENT is the one of the campaign's invitation, as its
    text (the same bytes icalendar writes when it reads and writes it again). The text
    before the events comes from `kept` when it has it under the zones and years it
    says (made by icalendar otherwise: 30 ms, most of a publish with nothing changed)."""
    events: list[str] = []
    years: list[int] = []
    for part in sorted(parts, key=lambda p: p.slug):
        if part.invitation is None or part.starts is None:
            continue
        if (part.ends or part.starts) < now - RECENT:
            continue
        events.append(vevent(part.invitation))
        years.append(part.starts.astimezone(settings.tz).year)
    tzids = sorted({tzid for event in events for tzid in _TZID.findall(event)})
    first, last = (min(years), max(years) + 1) if years else (0, 0)
    head = kept(f"{' '.join(tzids)} {first} {last}",
                lambda: _calendar_head(settings, tzids, first, last))
    return head + "".join(events) + _END


_END = "END:VCALENDAR\r\n"


def _calendar_head(settings: Settings, tzids: list[str], first: int, last: int) -> str:
    """The calendar's properties and the zones' VTIMEZONEs from `first` to `last`."""
    from icalendar import Calendar  # 25 ms: only when the head is not kept

    feed = Calendar()
    feed.add("prodid", f"-//citesmail//citesmail {__version__}//EN")
    feed.add("version", "2.0")
    feed.add("calscale", "GREGORIAN")
    feed.add("method", "PUBLISH")
    feed.add("x-wr-calname", settings.organization.name)
    feed.add("x-wr-timezone", settings.schedule.timezone)
    for tzid in tzids:
        zone = zone_component(tzid, first, last)
        if zone is not None:
            feed.add_component(zone)
    text: str = feed.to_ical().decode("utf-8")
    return text.removesuffix(_END)


def vevent(text: str) -> str:
    """The VEVENT of an invitation, its lines as they are."""
    start = text.index("BEGIN:VEVENT\r\n")
    end = text.index("END:VEVENT\r\n", start) + len("END:VEVENT\r\n")
    return text[start:end]


def sitemap(parts: list[Part], settings: Settings, urls: Urls) -> str:
    env = environment(settings.templates_dir)
    newest = max((p.updated for p in parts), default=EPOCH)
    pages = [(urls.base, newest)] + [(urls.page(p.slug), p.updated) for p in parts
                                     if p.state != Publication.DRAFT]  # drafts: noindex
    return render_template(env, "web/sitemap.xml.j2", {
        "pages": [{"url": url, "lastmod": _atom_date(when)} for url, when in pages]})
