"""The published site in a real Chromium: the index and the replay page at 390 and
1280 px without sideways scrolling, and axe-core finds no WCAG A/AA violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import ARTEFACTS, EVENT, REPLAY
from tests.publish.helpers import publish, with_sends
from tests.web.test_signup_browser import browser, violations  # noqa: F401 (fixture)

SCREENSHOTS = ARTEFACTS / "screenshots" / "publish"


def test_index_and_pages_in_chromium(browser: Any, workspace: Path) -> None:  # noqa: F811
    with_sends(workspace)
    publish("--drafts")
    site = workspace / "site"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages = {"index": site / "index.html", "replay": site / REPLAY / "index.html",
             "event": site / EVENT / "index.html"}
    for name, path in pages.items():
        for width in (390, 1280):
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(path.as_uri())
            overflow = page.evaluate("() => document.documentElement.scrollWidth - "
                                     "document.documentElement.clientWidth")
            assert overflow <= 0, f"{name} at {width} px scrolls sideways by {overflow} px"
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
            assert violations(page) == [], (name, width)
            page.close()
