"""The rendered emails in a real Chromium: one column at 375 px, two at 600 px, contrast."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EVENT, NEWSLETTER, REPLAY, run

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

# WCAG relative luminance and contrast of an element's text against the first opaque
# background found up its ancestors.
CONTRAST_JS = """
(el) => {
  const rgb = (s) => s.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92
                                    : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  let node = el, bg = null;
  while (node && node.nodeType === 1) {
    const value = rgb(getComputedStyle(node).backgroundColor);
    if (value.length === 3 || value[3] > 0) { bg = value.slice(0, 3); break; }
    node = node.parentElement;
  }
  bg = bg || [255, 255, 255];
  const fg = lum(rgb(getComputedStyle(el).color)), back = lum(bg);
  return (Math.max(fg, back) + 0.05) / (Math.min(fg, back) + 0.05);
}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=ARGS)
        yield instance
        instance.close()


def open_email(browser: Any, html: Path, width: int) -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900})
    # Only the local file loads: images on example.org must not reach the network.
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        "file:") else route.abort())
    page.goto(html.as_uri())
    return page


def box(page: Any, selector: str) -> dict[str, float]:
    found = page.locator(selector).first.bounding_box()
    assert found is not None, selector
    return found


@pytest.fixture
def replay_html(workspace: Path) -> Path:
    assert run("render", REPLAY, "-o", "out").exit_code == 0
    return workspace / "out" / f"{REPLAY}.html"


def test_desktop_width_puts_objectives_and_public_side_by_side(browser: Any,
                                                                replay_html: Path) -> None:
    page = open_email(browser, replay_html, 600)
    assert page.evaluate("document.documentElement.scrollWidth") <= 600
    objectives, public = box(page, "h2:text-is('Objectifs')"), box(page, "h2:text-is('Public')")
    assert objectives["y"] == public["y"]
    assert public["x"] > objectives["x"] + 200
    video = box(page, "a:text-is('Voir le replay')")
    slides = box(page, "a:text-is('Télécharger le support')")
    assert abs(video["y"] - slides["y"]) < 10
    page.close()


def test_phone_width_is_one_column_without_horizontal_scroll(browser: Any,
                                                             replay_html: Path) -> None:
    page = open_email(browser, replay_html, 375)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    objectives, public = box(page, "h2:text-is('Objectifs')"), box(page, "h2:text-is('Public')")
    assert public["y"] > objectives["y"] + 100
    assert abs(public["x"] - objectives["x"]) < 2
    video = box(page, "a:text-is('Voir le replay')")
    slides = box(page, "a:text-is('Télécharger le support')")
    assert slides["y"] > video["y"] + video["height"]
    size = page.evaluate("parseFloat(getComputedStyle(document.querySelector('h1')"
                         ".closest('div')).fontSize)")
    assert size >= 16
    page.close()


@pytest.mark.parametrize("slug", [REPLAY, EVENT, NEWSLETTER])
def test_text_contrast_meets_wcag_aa(browser: Any, workspace: Path, slug: str) -> None:
    assert run("render", slug, "-o", "out").exit_code == 0
    page = open_email(browser, workspace / "out" / f"{slug}.html", 600)
    elements = page.locator("p, li, h1, h2, h3, a, span, strong").all()
    assert len(elements) > 10
    for element in elements:
        if not element.inner_text().strip():
            continue
        ratio = element.evaluate(CONTRAST_JS)
        assert ratio >= 4.5, (element.inner_text()[:40], ratio)
    page.close()
