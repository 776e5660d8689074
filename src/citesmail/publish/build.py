"""The whole site as files (path -> bytes): what `publish` writes and serve's /archive/
answers from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..config import Settings
from ..errors import CitesmailError
from ..render.calendar import invitation
from .feeds import atom_feed, calendar_feed, event_stamp, sitemap
from .pages import CALENDAR_FILE, KINDS, Urls, campaign_page, index_name, index_page
from .site import Entry

ARCHIVE = "archive/"  # where `citesmail serve` answers with the site


@dataclass(frozen=True)
class Site:
    files: dict[str, bytes]  # relative path ('slug/index.html') -> bytes
    entries: list[Entry]


def default_base_url(settings: Settings) -> str:
    """Where serve publishes the site: /archive/ under `[unsubscribe] base_url`."""
    return settings.unsubscribe.base_url.rstrip("/") + "/" + ARCHIVE


def check_base_url(url: str) -> str:
    """A base URL ends with '/' (the pages are folders under it)."""
    if not url.startswith(("https://", "http://")):
        raise CitesmailError(f"--base-url {url!r} is not a web address",
                             "give the address the folder is published at, e.g. "
                             "https://www.example.org/annonces/")
    return url if url.endswith("/") else url + "/"


def build_site(entries: list[Entry], settings: Settings, base_url: str,
               now: datetime) -> Site:
    urls = Urls(check_base_url(base_url))
    files: dict[str, str] = {}
    contents: dict[str, str] = {}
    invitations: dict[str, str] = {}
    for entry in entries:
        page = campaign_page(entry, settings, urls)
        files[f"{entry.slug}/index.html"] = page.html
        contents[entry.slug] = page.content
        calendar = invitation(entry.campaign, settings, stamp=event_stamp(entry))
        if calendar is not None:
            files[f"{entry.slug}/{CALENDAR_FILE}"] = invitations[entry.slug] = calendar
    for kind in (None, *KINDS):
        if kind is None or any(entry.campaign.kind == kind for entry in entries):
            files[index_name(kind)] = index_page(entries, kind, settings, urls, now)
    files["feed.xml"] = atom_feed(entries, contents, settings, urls)
    files["events.ics"] = calendar_feed(entries, invitations, settings, now)
    files["sitemap.xml"] = sitemap(entries, settings, urls)
    return Site({path: text.encode("utf-8") for path, text in files.items()}, entries)
