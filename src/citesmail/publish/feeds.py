"""The site's feeds: Atom 1.0 (RFC 4287) of the announcements, an iCalendar feed of the
events to subscribe to, and the sitemap.

The Atom feed and the sitemap are Jinja templates (web/feed.xml.j2, web/sitemap.xml.j2:
autoescaped, so every text is XML-escaped): two short, fixed formats did not earn a
dependency. Their dates come from the sends and the files, never from the clock, so that
nothing changes when nothing was changed. The iCalendar feed is made by icalendar, from
the very invitations the emails carry (same UIDs).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from .. import __version__
from ..config import Settings
from ..render.calendar import has_calendar, invitation
from ..render.environment import environment, render_template
from ..states import Publication
from .pages import Urls
from .site import Entry

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the feed's date while nothing is published
# Events the calendar feed keeps once they are over: a month of them.
RECENT = timedelta(days=31)


def _atom_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def atom_feed(entries: list[Entry], contents: dict[str, str], settings: Settings,
              urls: Urls) -> str:
    """One entry per published campaign (drafts too, when published), with its full
    content; `contents`: slug -> the HTML of its page's content."""
    env = environment(settings.templates_dir)
    return render_template(env, "web/feed.xml.j2", {
        "org": settings.organization, "lang": settings.campaigns.lang,
        "id": urls.base, "feed_url": urls.file("feed.xml"), "home": urls.base,
        "updated": _atom_date(max((e.updated for e in entries), default=EPOCH)),
        "version": __version__,
        "entries": [{"title": e.campaign.title, "url": urls.page(e.slug),
                     "published": _atom_date(e.published), "updated": _atom_date(e.updated),
                     "summary": e.campaign.lede or "", "content": contents[e.slug],
                     "lang": e.campaign.lang, "kind": e.campaign.kind}
                    for e in entries],
    })


def event_stamp(entry: Entry) -> datetime:
    """An invitation's DTSTAMP on the site: when its file last changed, not now."""
    return entry.updated


def calendar_feed(entries: list[Entry], invitations: dict[str, str], settings: Settings,
                  now: datetime) -> str:
    """The events still to come and those of the last month, in the organisation's zone
    (with its VTIMEZONE); each VEVENT is the one of the campaign's invitation
    (`invitations`: slug -> its text, made once for its own file and this feed)."""
    from icalendar import Calendar  # 40 ms: only when publishing

    feed = Calendar()
    feed.add("prodid", f"-//citesmail//citesmail {__version__}//EN")
    feed.add("version", "2.0")
    feed.add("calscale", "GREGORIAN")
    feed.add("method", "PUBLISH")
    feed.add("x-wr-calname", settings.organization.name)
    feed.add("x-wr-timezone", settings.schedule.timezone)
    years: list[int] = []
    for entry in sorted(entries, key=lambda e: e.slug):
        event = entry.campaign.event
        if not has_calendar(entry.campaign) or event is None or event.starts is None:
            continue
        if (event.ends or event.starts) < now - RECENT:
            continue
        text = invitations.get(entry.slug) or invitation(entry.campaign, settings,
                                                         stamp=event_stamp(entry))
        for component in Calendar.from_ical(text or "").walk("VEVENT"):
            feed.add_component(component)
        years.append(event.starts.astimezone(settings.tz).year)
    if years:
        feed.add_missing_timezones(first_date=date(min(years), 1, 1),
                                   last_date=date(max(years) + 1, 1, 1))
    ical: str = feed.to_ical().decode("utf-8")
    return ical


def sitemap(entries: list[Entry], settings: Settings, urls: Urls) -> str:
    env = environment(settings.templates_dir)
    newest = max((e.updated for e in entries), default=EPOCH)
    pages = [(urls.base, newest)] + [(urls.page(e.slug), e.updated) for e in entries
                                     if e.state != Publication.DRAFT]  # drafts: noindex
    return render_template(env, "web/sitemap.xml.j2", {
        "pages": [{"url": url, "lastmod": _atom_date(when)} for url, when in pages]})
