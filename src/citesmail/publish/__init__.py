"""The web version of the campaigns (`citesmail publish`, serve's /archive/): a static
site made from the same campaign files as the emails, with no personal data in it.

site.py says which campaign files and how their sends stand, parts.py renders what one
campaign gives the site (pages.py: its HTML page), cache.py keeps that from one publish
to the next, index.py makes the index pages and feeds.py the Atom feed, the iCalendar
feed and the sitemap, build.py puts them together as files, and writer.py writes only
the files whose bytes changed.
"""

from __future__ import annotations

from .build import Site, build_site, default_base_url
from .cache import PartCache, cache_path, load_cache, save_cache
from .parts import Part
from .site import Entry, Source, select_sources
from .writer import Written, write_site

__all__ = ["Entry", "Part", "PartCache", "Site", "Source", "Written", "build_site",
           "cache_path", "default_base_url", "load_cache", "save_cache", "select_sources",
           "write_site"]
