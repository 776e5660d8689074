"""The site's HTML: one page per campaign (the web version of the announcement), from
the templates web/*.html.j2 (a workspace's templates/web/ wins).

A page is rendered like an email, through the same sandboxed Jinja environment and the
same Markdown, with recipient placeholders as tokens; the tokens are then filled with no
recipient at all, so each prints its default: no name, address or link of anyone. The
index pages are made in index.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from babel.core import get_global
from markupsafe import Markup

from ..campaigns import Campaign
from ..config import Settings
from ..render import markdown, refuse_reserved_text, template_context
from ..render.calendar import has_calendar
from ..render.environment import environment, render_body, render_template
from ..render.labels import Dates
from ..render.slots import TOKEN, SlotTable, fill
from ..states import Publication
from .site import Entry

KINDS = ("event", "replay", "newsletter")
CALENDAR_FILE = "event.ics"  # an invitation's own file, beside its page


@dataclass(frozen=True)
class Urls:
    """Where the site is published (ends with '/'): canonical addresses are under it."""

    base: str

    def page(self, slug: str) -> str:
        return f"{self.base}{slug}/"

    def file(self, name: str) -> str:
        return f"{self.base}{name}"


def index_name(kind: str | None) -> str:
    """The index of one kind: a name no campaign folder can have (slugs have no dot)."""
    return "index.html" if kind is None else f"index-{kind}.html"


def _no_recipient(text: str, slots: list[tuple[str, str]], page_url: str) -> str:
    """Every placeholder as its default; the web view's link is the page itself."""
    filled = fill(text, tuple(slots), {"webview_url": page_url}, escape=True)
    assert TOKEN.search(filled) is None
    return filled


def _json_ld(data: dict[str, Any]) -> Markup:
    """JSON inside <script>: '<', '>' and '&' escaped so that no text can close it."""
    text = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True)
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, code)
    return Markup(text)  # escaped for a script element just above


def event_data(campaign: Campaign, settings: Settings, url: str) -> dict[str, Any] | None:
    """schema.org Event of an invitation or a replay (the event it recorded)."""
    event = campaign.event
    if campaign.kind not in {"event", "replay"} or event is None or event.starts is None:
        return None
    org = settings.organization
    online = event.join_url or (campaign.replay.video_url if campaign.replay else None)
    data: dict[str, Any] = {
        "@context": "https://schema.org", "@type": "Event", "name": campaign.title,
        "startDate": event.starts.astimezone(settings.tz).isoformat(),
        "eventStatus": "https://schema.org/EventScheduled", "url": url,
        "inLanguage": campaign.lang,
        "organizer": {"@type": "Organization", "name": org.name,
                      **({"url": org.website} if org.website else {})},
    }
    if event.ends:
        data["endDate"] = event.ends.astimezone(settings.tz).isoformat()
    if campaign.lede:
        data["description"] = campaign.lede
    if online or not event.location:
        data["eventAttendanceMode"] = "https://schema.org/OnlineEventAttendanceMode"
        data["location"] = {"@type": "VirtualLocation", "url": online or url}
    else:
        data["eventAttendanceMode"] = "https://schema.org/OfflineEventAttendanceMode"
        data["location"] = {"@type": "Place", "name": event.location,
                            "address": event.location}
    return data


def og_locale(lang: str) -> str:
    """Open Graph's language_TERRITORY: 'fr' -> 'fr_FR', 'en' -> 'en_US'."""
    likely = get_global("likely_subtags").get(lang.replace("-", "_").split("_")[0], lang)
    parts = [part for part in likely.split("_") if len(part) != 4]  # no script ('Latn')
    return "_".join(parts[:2])


def share_image(campaign: Campaign, settings: Settings) -> str:
    """The image of a shared link: the campaign's first picture, else the logo."""
    pictures = [item.image for item in campaign.items if item.image]
    return pictures[0] if pictures else settings.organization.logo_url


@dataclass(frozen=True)
class CampaignPage:
    """A campaign's page, and its content alone (the Atom entry's)."""

    html: str
    content: str


def campaign_page(entry: Entry, settings: Settings, urls: Urls) -> CampaignPage:
    campaign = entry.campaign
    refuse_reserved_text(campaign, settings)
    env = environment(settings.templates_dir)
    table = SlotTable()
    context = template_context(campaign, settings, table)
    body = render_body(env, campaign.body, context, campaign.path, campaign.body_line)
    url = urls.page(campaign.slug)
    event = event_data(campaign, settings, url)
    context.update(
        body_html=Markup(markdown.to_html(body)),  # markdown-it escapes text, no raw HTML
        lang=campaign.lang, og_locale=og_locale(campaign.lang), entry=entry,
        draft=entry.state == Publication.DRAFT,
        scheduled=entry.state == Publication.SCHEDULED,
        published=Dates(campaign.lang, settings.tz).date(entry.published),
        url=url, root="../", calendar_file=CALENDAR_FILE if has_calendar(campaign) else None,
        image=share_image(campaign, settings), json_ld=_json_ld(event) if event else None,
    )
    # The content once: the built-in page prints it (a workspace's page may still
    # include web/content.html.j2, which renders the same text again).
    content = render_template(env, "web/content.html.j2", context)
    context["content"] = Markup(content)  # autoescaped by its own template
    html = render_template(env, "web/campaign.html.j2", context)
    return CampaignPage(_no_recipient(html, table.slots, url),
                        _no_recipient(content, table.slots, url))
