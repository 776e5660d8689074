"""A send's counted links: found in the rendered HTML and text, numbered, stored in
`tracked_links` when the send is stored, and pointed at `serve`'s /c/ when the run
builds the messages.

What is counted: every http(s) address of an `<a href>` in the HTML and every http(s)
address in the text part, numbered from 1 in order of first appearance (the same address
in both parts, or twice, is one link). What is not: other targets (mailto:, tel:, #...),
and the per-recipient links (unsubscribe, preferences, web view, calendar), which are
recipient slots (`@@cmN@@`) when the campaign is rendered and so never match here.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from ..db import Send, TrackedLink
from ..render.calendar import GOOGLE, OUTLOOK
from ..render.slots import TOKEN

HREF = re.compile(r"""(<a\b[^>]*?\shref=")(https?://[^"]*)(")""", re.IGNORECASE)
TEXT_URL = re.compile(r"https?://[^\s<>\"]+")
_TRAILING = ".,;:!?)]»"
# Not counted, whatever the mode: they are each recipient's own links.
NOT_COUNTED = ("unsubscribe", "preference", "web view", "calendar")
CALENDAR_PAGES = (GOOGLE, OUTLOOK)


def _text_url(found: str) -> str:
    return found.rstrip(_TRAILING)


def _countable(url: str) -> bool:
    """Not a recipient slot, nor the event's "add to calendar" pages (calendar links)."""
    return TOKEN.search(url) is None and "@@" not in url and \
        not url.startswith(CALENDAR_PAGES)


def numbered(rendered_html: str, text: str) -> dict[str, int]:
    """Each counted address and its number, in order of first appearance."""
    numbers: dict[str, int] = {}
    found = [html.unescape(m.group(2)) for m in HREF.finditer(rendered_html)]
    found += [_text_url(m.group(0)) for m in TEXT_URL.finditer(text)]
    for url in found:
        if _countable(url) and url not in numbers:
            numbers[url] = len(numbers) + 1
    return numbers


def store_links(session: Session, campaign: str, rendered_html: str, text: str) -> None:
    """The send's numbered links (replacing those of a schedule it replaces)."""
    session.execute(delete(TrackedLink).where(TrackedLink.campaign == campaign))
    rows = [{"campaign": campaign, "number": number, "url": url}
            for url, number in numbered(rendered_html, text).items()]
    if rows:
        session.execute(insert(TrackedLink), rows)


def rewrite(rendered_html: str, text: str,
            counted: Callable[[int], str]) -> tuple[str, str]:
    """(html, text) with each counted address replaced by `counted(its number)`."""
    numbers = numbered(rendered_html, text)

    def in_html(match: re.Match[str]) -> str:
        url = html.unescape(match.group(2))
        if url not in numbers:
            return match.group(0)
        return f"{match.group(1)}{html.escape(counted(numbers[url]))}{match.group(3)}"

    def in_text(match: re.Match[str]) -> str:
        found = match.group(0)
        url = _text_url(found)
        if url not in numbers:
            return found
        return counted(numbers[url]) + found[len(url):]

    return HREF.sub(in_html, rendered_html), TEXT_URL.sub(in_text, text)


def link_target(session: Session, send_id: int, number: int) -> tuple[str, str] | None:
    """(campaign, address) of a send's counted link; None when there is no such link."""
    query = (select(Send.campaign, TrackedLink.url)
             .join(TrackedLink, TrackedLink.campaign == Send.campaign)
             .where(Send.id == send_id, TrackedLink.number == number))
    found = session.execute(query).first()
    return (found[0], found[1]) if found is not None else None


def send_campaign(session: Session, send_id: int) -> str | None:
    return session.scalar(select(Send.campaign).where(Send.id == send_id))
