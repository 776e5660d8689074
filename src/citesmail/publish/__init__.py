"""The web version of the campaigns (`citesmail publish`, serve's /archive/): a static
site made from the same campaign files as the emails, with no personal data in it.

site.py says which campaigns and in which order, pages.py renders the HTML pages,
feeds.py the Atom feed, the iCalendar feed and the sitemap, build.py puts them together
as files, and writer.py writes only the files whose bytes changed.
"""

from __future__ import annotations

from .build import Site, build_site, default_base_url
from .site import Entry, select_entries
from .writer import Written, write_site

__all__ = ["Entry", "Site", "Written", "build_site", "default_base_url", "select_entries",
           "write_site"]
