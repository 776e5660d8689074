"""Campaign → RenderedCampaign: Jinja2 → MJML → HTML → inlined CSS, plus the text part.

Runs once per campaign; recipients' values stay as tokens (see slots.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from ..campaigns import Campaign, FrontMatter, key_line
from ..campaigns.models import Speaker
from ..config import Settings
from ..errors import CampaignError, ConfigError
from ..languages import base_language
from . import markdown
from .calendar import event_facts, google_link, has_calendar, invitation, outlook_link
from .environment import environment, render_body, render_template, template_sources
from .labels import Dates, labels_for
from .mjml import compile_mjml
from .slots import LINK_FIELDS, TOKEN, LinkSlots, RecipientSlots, SlotTable, fill, reserved_at
from .text import keep_french_spacing, keep_french_spacing_html, squeeze_blank_lines, wrap

if TYPE_CHECKING:
    from css_inline import CSSInliner


@dataclass(frozen=True)
class RenderedCampaign:
    """The campaign's HTML and text, with recipient tokens still to fill."""

    campaign: Campaign
    subject: str
    html: str
    text: str
    slots: tuple[tuple[str, str], ...]
    calendar: str | None = None  # an event's invitation (iCalendar)

    @property
    def slug(self) -> str:
        return self.campaign.slug

    def fill(self, values: Mapping[str, str | None]) -> tuple[str, str]:
        """(html, text) for one recipient; values are escaped in the HTML part."""
        return (
            fill(self.html, self.slots, values, escape=True),
            fill(self.text, self.slots, values, escape=False),
        )


@lru_cache(maxsize=1)
def _inliner() -> CSSInliner:
    # Keep @media (MJML's columns need them); never fetch MJML's font stylesheet.
    from css_inline import CSSInliner  # 0.16 s to load: the web pages never need it

    return CSSInliner(keep_at_rules=True, keep_link_tags=True, load_remote_stylesheets=False)


def speaker_groups(speakers: list[Speaker]) -> list[tuple[str | None, list[Speaker]]]:
    """Speakers gathered under their group, groups in order of first appearance."""
    groups: dict[str | None, list[Speaker]] = {}
    for speaker in speakers:
        groups.setdefault(speaker.group, []).append(speaker)
    return list(groups.items())


def template_context(campaign: Campaign, settings: Settings, table: SlotTable) -> dict[str, Any]:
    t = labels_for(campaign.lang)
    dates = Dates(campaign.lang, settings.tz)
    event = campaign.event
    when = dates.span(event.starts, event.ends) if event and event.starts else None
    org = settings.organization
    return {
        "campaign": campaign,
        "org": org,
        "t": t,
        "dates": dates,
        "when": when,
        "when_label": t["original_event"] if campaign.kind == "replay"
        else t["when"] + t["colon"].rstrip(),
        "reason": org.reason or t["reason"].format(org=org.name),
        "sent_to": sent_to(t, org.name, table),
        "subscribed_lists": subscribed_lists(t, org.name, table),
        "speaker_groups": speaker_groups(campaign.speakers),
        "recipient": RecipientSlots(table),
        "links": LinkSlots(table),
        "calendar_links": calendar_links(campaign, settings),
    }


def sent_to(t: Mapping[str, str], organization: str, table: SlotTable) -> str:
    """The footer's sentence naming the address the message went to and the lists
    through which the reader is in the segment (both filled per recipient)."""
    return t["sent_to"].format(email=table.slot("email"),
                               lists=subscribed_lists(t, organization, table))


def subscribed_lists(t: Mapping[str, str], organization: str, table: SlotTable) -> str:
    """The recipient's lists in the segment, or a phrase naming the organisation's."""
    return table.slot("lists", t["lists_default"].format(org=organization))


def calendar_links(campaign: Campaign, settings: Settings) -> dict[str, str] | None:
    """Google's and Outlook.com's "add to calendar" pages, for an event."""

    if not has_calendar(campaign):
        return None
    facts = event_facts(campaign, settings)
    return {"google": google_link(facts), "outlook": outlook_link(facts)}


_HREF = re.compile(r'href="([^"]*)"')


def check_link_addresses(html: str, slots: list[tuple[str, str]], campaign: Campaign) -> None:
    """A recipient's value may be a link's text, never part of its address."""
    for match in _HREF.finditer(html):
        address = match.group(1)
        if not TOKEN.search(address):
            continue
        whole = TOKEN.fullmatch(address)
        if whole and slots[int(whole.group(1))][0] in LINK_FIELDS:
            continue
        raise CampaignError(
            "a recipient value is used inside a link address",
            "link addresses are the same for every recipient; put the value in the text",
            path=campaign.path)


RESERVED = "'@@cm' is reserved: citesmail marks recipient values with it while rendering"
RESERVED_HINT = "write it another way, e.g. '@@ cm'"


Loc = tuple[str | int, ...]


def _strings(value: Any, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """Every text in a front matter (as model_dump gives it), with its key path."""
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))


_FRONT = set(FrontMatter.model_fields)


def refuse_reserved_text(campaign: Campaign, settings: Settings) -> None:
    """Text that reads as a recipient token would be filled with a recipient's value (or
    break the fill): refuse it where the author wrote it."""
    found = reserved_at(campaign.body)
    if found is not None:
        raise CampaignError(RESERVED, RESERVED_HINT, path=campaign.path,
                            line=campaign.body_line + found[0] - 1, column=found[1])
    # All the front matter's texts at once, as JSON (which escapes none of the characters
    # of a token): only a campaign that has one is searched for the key that holds it.
    if reserved_at(campaign.model_dump_json(include=_FRONT, exclude_none=True)) is not None:
        front = campaign.model_dump(include=_FRONT, exclude_none=True)
        for loc, text in _strings(front):
            if reserved_at(text) is not None:
                line = key_line(campaign.path, loc) if campaign.path.exists() else None
                raise CampaignError(RESERVED, RESERVED_HINT, path=campaign.path, line=line)
    for key, text in settings.organization:
        if reserved_at(text) is not None:
            path, line = settings.place("organization", key)
            raise ConfigError(RESERVED, RESERVED_HINT, path=path, line=line)


def render_mjml(campaign: Campaign, settings: Settings) -> tuple[str, str, SlotTable]:
    """(MJML source, plain text, slot table): everything before MJML compilation."""
    refuse_reserved_text(campaign, settings)
    env = environment(settings.templates_dir)
    table = SlotTable()
    context = template_context(campaign, settings, table)
    body = render_body(env, campaign.body, context, campaign.path, campaign.body_line)
    context["body_html"] = Markup(markdown.to_html(body))
    context["body_text"] = markdown.to_text(body).strip("\n")
    mjml_source = render_template(env, f"{campaign.kind}.mjml.j2", context)
    text = render_template(env, "text.txt.j2", context)
    if base_language(campaign.lang) == "fr":  # before wrapping: no line starts with ':'
        text = keep_french_spacing(text)
    text = squeeze_blank_lines(wrap(text))
    return mjml_source, text, table


def inline_css(html: str) -> str:
    return _inliner().inline(html)


def render_campaign(campaign: Campaign, settings: Settings) -> RenderedCampaign:
    mjml_source, text, table = render_mjml(campaign, settings)
    env = environment(settings.templates_dir)
    names = [f"{campaign.kind}.mjml.j2", "base.mjml.j2", "macros.mjml.j2"]
    html = inline_css(compile_mjml(mjml_source, lambda: template_sources(env, names)))
    check_link_addresses(html, table.slots, campaign)
    if base_language(campaign.lang) == "fr":
        html = keep_french_spacing_html(html)
    if not html.endswith("\n"):
        html += "\n"  # as a MIME text part ends
    return RenderedCampaign(campaign, campaign.subject, html, text, tuple(table.slots),
                            invitation(campaign, settings))
