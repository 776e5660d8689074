"""The whole site as files (path -> bytes): what `publish` writes and serve's /archive/
answers from.

Each campaign gives a Part (parts.py): rendered, or taken from the cache when nothing
it depends on changed (cache.py). The index pages and the feeds are made from the
Parts at every build: they depend on all the campaigns, and on the clock (what is still
to come).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..config import Settings
from ..errors import CitesmailError
from .cache import PartCache, head_key, part_key, site_key
from .feeds import atom_feed, calendar_feed, sitemap
from .index import index_page
from .pages import CALENDAR_FILE, KINDS, Urls, index_name
from .parts import Part, render_part
from .site import Source

ARCHIVE = "archive/"  # where `citesmail serve` answers with the site


@dataclass(frozen=True)
class Site:
    files: dict[str, bytes]  # relative path ('slug/index.html') -> bytes
    parts: list[Part]  # the published campaigns, newest first
    rendered: int  # how many of them were rendered (the others came from the cache)


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


def _parts(sources: list[Source], settings: Settings, urls: Urls, site: str,
           cache: PartCache) -> tuple[list[Part], int]:
    """(the campaigns' Parts, newest first; how many were rendered)."""
    parts, rendered = [], 0
    for source in sources:
        key = part_key(site, source)
        found, part = cache.get(source.slug, key)
        if not found:
            part = render_part(source, settings, urls)
            cache.put(source.slug, key, part)
            rendered += 1
        if part is not None:
            parts.append(part)
    cache.keep_only({source.slug for source in sources})
    parts.sort(key=lambda part: (part.published, part.slug), reverse=True)
    return parts, rendered


def build_site(sources: list[Source], settings: Settings, base_url: str, now: datetime,
               cache: PartCache | None = None) -> Site:
    """The site; `cache` gives the Parts of unchanged campaigns and takes the others."""
    urls = Urls(check_base_url(base_url))
    site = site_key(settings, urls.base)
    cache = PartCache() if cache is None else cache
    parts, rendered = _parts(sources, settings, urls, site, cache)
    files: dict[str, str] = {}
    for part in parts:
        files[f"{part.slug}/index.html"] = part.page
        if part.invitation is not None:
            files[f"{part.slug}/{CALENDAR_FILE}"] = part.invitation
    for kind in (None, *KINDS):
        if kind is None or any(part.kind == kind for part in parts):
            files[index_name(kind)] = index_page(parts, kind, settings, urls, now)
    files["feed.xml"] = atom_feed(parts, settings, urls)
    files["events.ics"] = calendar_feed(
        parts, settings, now, lambda key, make: cache.head(head_key(site, key), make))
    files["sitemap.xml"] = sitemap(parts, settings, urls)
    return Site({path: text.encode("utf-8") for path, text in files.items()}, parts,
                rendered)
