"""An event campaign in calendars: its iCalendar invitation and "add to calendar" links.

The invitation is published (METHOD:PUBLISH, RFC 5546), not a meeting request: nobody
is asked to answer. Its UID is made of the campaign's slug and the sender's domain: the
same at every render, so the messages of a send, resumed or scheduled, all carry the
same event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parseaddr
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from .. import __version__
from ..campaigns.models import DEFAULT_LENGTH, Campaign
from ..config import Settings
from .labels import labels_for

if TYPE_CHECKING:
    from icalendar.cal.component import Component

GOOGLE = "https://calendar.google.com/calendar/render"
OUTLOOK = "https://outlook.live.com/calendar/0/action/compose"


def has_calendar(campaign: Campaign) -> bool:
    return campaign.kind == "event" and campaign.event is not None \
        and campaign.event.starts is not None


def _span(campaign: Campaign) -> tuple[datetime, datetime]:
    event = campaign.event
    assert event is not None and event.starts is not None
    return event.starts, event.ends or event.starts + DEFAULT_LENGTH


def _description(campaign: Campaign) -> str:
    """The lede and the event's links, as plain text."""
    event = campaign.event
    assert event is not None
    t = labels_for(campaign.lang)
    lines = [campaign.lede] if campaign.lede else []
    for label, url in ((t["register"], event.registration_url), (t["join"], event.join_url)):
        if url:
            lines.append(f"{label}{t['colon']}{url}")
    return "\n\n".join(lines)


def uid(campaign: Campaign, settings: Settings) -> str:
    return f"{campaign.slug}@{settings.sender.domain}"


def invitation(campaign: Campaign, settings: Settings, *,
               stamp: datetime | None = None) -> str | None:
    """The invitation (iCalendar text, CRLF lines) of an event campaign; None otherwise.
    Times are in the organisation's zone, which the file carries (VTIMEZONE)."""
    if not has_calendar(campaign):
        return None
    from icalendar import Calendar, Event, vCalAddress  # 40 ms: only for events

    event = campaign.event
    assert event is not None
    starts, ends = _span(campaign)
    zone = settings.tz
    calendar = Calendar()
    calendar.add("prodid", f"-//citesmail//citesmail {__version__}//{campaign.lang.upper()}")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    entry = Event()
    entry.add("uid", uid(campaign, settings))
    entry.add("dtstamp", (stamp or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0))
    entry.add("dtstart", starts.astimezone(zone))
    entry.add("dtend", ends.astimezone(zone))
    entry.add("summary", campaign.title)
    if event.location:
        entry.add("location", event.location)
    url = event.registration_url or event.join_url
    if url:
        entry.add("url", url)
    description = _description(campaign)
    if description:
        entry.add("description", description)
    organizer = vCalAddress(f"mailto:{parseaddr(settings.sender.from_)[1]}")
    organizer.params["cn"] = settings.organization.name
    entry.add("organizer", organizer)
    entry.add("sequence", 0)
    entry.add("status", "CONFIRMED")
    entry.add("transp", "OPAQUE")
    calendar.add_component(entry)
    text: str = calendar.to_ical().decode("utf-8")
    # The zone's rules for the event's year only: a few lines, not fifty years of them,
    # before the VEVENT (where add_component would have put it).
    tzid = entry["dtstart"].params.get("TZID")
    if tzid:
        rules = zone_text(tzid, starts.astimezone(zone).year, ends.astimezone(zone).year + 1)
        at = text.index(_EVENT_STARTS) + 2
        text = text[:at] + rules + text[at:]
    return text


_EVENT_STARTS = "\r\nBEGIN:VEVENT\r\n"  # no value has a line break: icalendar escapes it


@lru_cache(maxsize=32)
def zone_text(tzid: str, first_year: int, last_year: int) -> str:
    """zone_component's lines, written once: writing them was half of an invitation
    (they are most of its lines). "" when there is no component."""
    component = zone_component(tzid, first_year, last_year)
    return "" if component is None else component.to_ical().decode("utf-8")


@lru_cache(maxsize=32)
def zone_component(tzid: str, first_year: int, last_year: int) -> Component | None:
    """The VTIMEZONE of a zone from 1 January `first_year` to 1 January `last_year` (what
    icalendar's add_missing_timezones adds), made once: it was a third of an invitation.
    None for UTC (written with a Z) and for a zone icalendar does not know."""
    from icalendar import Timezone

    if tzid == "UTC":
        return None
    try:
        zone: Component = Timezone.from_tzid(tzid, first_date=date(first_year, 1, 1),
                                             last_date=date(last_year, 1, 1))
    except ValueError:
        return None
    return zone


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class EventFacts:
    """What the "add to calendar" pages are given: the same for every recipient."""

    title: str
    starts: datetime
    ends: datetime
    description: str
    location: str
    timezone: str


def event_facts(campaign: Campaign, settings: Settings) -> EventFacts:
    starts, ends = _span(campaign)
    event = campaign.event
    assert event is not None
    return EventFacts(campaign.title, starts, ends, _description(campaign),
                      event.location or "", settings.schedule.timezone)


def facts_from_invitation(text: str) -> EventFacts:
    """The same facts read back from a stored invitation (what `serve` has of a send)."""
    from icalendar import Calendar

    entry = next(iter(Calendar.from_ical(text).walk("VEVENT")))
    starts = entry.decoded("dtstart")
    zone = entry["dtstart"].params.get("TZID", "UTC")
    return EventFacts(str(entry.get("summary", "")), starts, entry.decoded("dtend"),
                      str(entry.get("description", "")), str(entry.get("location", "")),
                      str(zone))


def google_link(facts: EventFacts) -> str:
    """Google Calendar's page for adding the event (the user confirms there)."""
    query = {"action": "TEMPLATE", "text": facts.title,
             "dates": f"{_utc(facts.starts)}/{_utc(facts.ends)}",
             "details": facts.description, "ctz": facts.timezone}
    if facts.location:
        query["location"] = facts.location
    return f"{GOOGLE}?{urlencode(query)}"


def outlook_link(facts: EventFacts) -> str:
    """Outlook.com's page for adding the event."""
    query = {"rru": "addevent", "subject": facts.title,
             "startdt": facts.starts.astimezone(UTC).isoformat().replace("+00:00", "Z"),
             "enddt": facts.ends.astimezone(UTC).isoformat().replace("+00:00", "Z"),
             "body": facts.description}
    if facts.location:
        query["location"] = facts.location
    return f"{OUTLOOK}?{urlencode(query, quote_via=quote)}"  # %20: Outlook shows '+' as is


def calendar_page(facts: EventFacts, service: str) -> str | None:
    """The "add to calendar" page of a service named in a short link, or None."""
    pages = {"google": google_link, "outlook": outlook_link}
    make = pages.get(service)
    return make(facts) if make else None
