"""The rendered emails in a real Chromium: columns, contrast in light and dark mode, tap
targets, images, the dark logo. Screenshots go to test-artefacts/screenshots/."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    ARTEFACTS,
    EVENT,
    MINIMAL_REPLAY,
    NEWSLETTER,
    REPLAY,
    make_workspace,
    run,
    write,
)
from tests.render.measure import CONTRAST_JS, TARGETS_JS

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = ARTEFACTS / "screenshots"
EXAMPLES = [REPLAY, EVENT, NEWSLETTER]
SCHEMES = ["light", "dark"]
WIDTHS = [600, 375]
COLUMN = 600 - 2 * 24  # the content column inside the sections' 24px padding

# Buttons: a link in a cell with a background colour (mj-button), grouped by section.
BUTTONS_JS = """
() => [...document.querySelectorAll('td[bgcolor] > a')].map(a => {
  const r = a.getBoundingClientRect(), cell = a.parentElement.getBoundingClientRect();
  return {text: a.textContent.trim(), y: r.y, height: r.height, cell: cell.height,
          row: [...document.querySelectorAll('div[class~="cm-card"]')]
               .indexOf(a.closest('div[class~="cm-card"]'))};
})
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (scripts/test.sh does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def emails(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three examples as `citesmail render` writes them, rendered once for the module."""
    ws = make_workspace(tmp_path_factory.mktemp("emails") / "ws")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ws)
        patch.delenv("CITESMAIL_SECRET", raising=False)
        for slug in EXAMPLES:
            result = run("render", slug, "-o", "out")
            assert result.exit_code == 0, result.output
    return {slug: ws / "out" / f"{slug}.html" for slug in EXAMPLES}


def open_email(browser: Any, html: Path, width: int, scheme: str = "light") -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    # Only the local file loads: images on example.org must not reach the network.
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        "file:") else route.abort())
    page.goto(html.as_uri())
    return page


def box(page: Any, selector: str) -> dict[str, float]:
    found = page.locator(selector).first.bounding_box()
    assert found is not None, selector
    return found


def test_desktop_width_puts_objectives_and_public_side_by_side(browser: Any,
                                                                emails: dict[str, Path]) -> None:
    page = open_email(browser, emails[REPLAY], 600)
    assert page.evaluate("document.documentElement.scrollWidth") <= 600
    objectives, public = box(page, "h2:text-is('Objectifs')"), box(page, "h2:text-is('Public')")
    assert objectives["y"] == public["y"]
    assert public["x"] > objectives["x"] + 200
    video = box(page, "a:text-is('Voir le replay')")
    slides = box(page, "a:text-is('Télécharger le support')")
    assert abs(video["y"] - slides["y"]) < 10
    page.close()


def test_phone_width_is_one_column_without_horizontal_scroll(browser: Any,
                                                             emails: dict[str, Path]) -> None:
    page = open_email(browser, emails[REPLAY], 375)
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


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("slug", EXAMPLES)
def test_every_text_has_wcag_aa_contrast_in_light_and_dark_mode(
        browser: Any, emails: dict[str, Path], slug: str, scheme: str, width: int) -> None:
    page = open_email(browser, emails[slug], width, scheme)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{slug}-{width}-{scheme}.png"), full_page=True)
    texts = page.evaluate(CONTRAST_JS)
    assert len(texts) > 20
    low = [(text["text"], round(text["ratio"], 2)) for text in texts if text["ratio"] < 4.5]
    assert not low, f"{scheme} mode, {width}px: {low}"
    page.close()


def test_dark_mode_darkens_the_page_and_the_cards(browser: Any,
                                                  emails: dict[str, Path]) -> None:
    backgrounds = {}
    for scheme in SCHEMES:
        page = open_email(browser, emails[REPLAY], 600, scheme)
        backgrounds[scheme] = page.evaluate(
            "['body', 'div.cm-card > table', 'h1'].map(s => ["
            " getComputedStyle(document.querySelector(s)).backgroundColor,"
            " getComputedStyle(document.querySelector(s)).color])")
        page.close()
    assert backgrounds["light"][0][0] == "rgb(243, 244, 246)"
    assert backgrounds["light"][1][0] == "rgb(255, 255, 255)"
    assert backgrounds["dark"][0][0] == "rgb(17, 24, 39)"
    assert backgrounds["dark"][1][0] == "rgb(31, 41, 55)"
    assert backgrounds["dark"][2][1] == "rgb(249, 250, 251)"  # the title, light on dark


def _gap(a: dict[str, float], b: dict[str, float]) -> float:
    """Distance between two boxes; negative when they overlap."""
    across = max(b["x"] - (a["x"] + a["width"]), a["x"] - (b["x"] + b["width"]))
    down = max(b["y"] - (a["y"] + a["height"]), a["y"] - (b["y"] + b["height"]))
    return max(across, down)


# Links each example must offer as tap targets (beside the footer's two and the top one).
NAMED_TARGETS = {
    REPLAY: ["Voir le replay", "Télécharger le support"],
    EVENT: ["S'inscrire", "Rejoindre la visio", "Google Agenda", "Outlook.com",
            "fichier .ics (Apple, Thunderbird…)"],
    NEWSLETTER: ["Lire la suite : « Replay : les cités de l'emploi »",
                 "Lire la suite : « Fiche repère : conseils citoyens et emploi »"],
}


@pytest.mark.parametrize("slug", EXAMPLES)
def test_tap_targets_are_44px_tall_and_apart_on_a_phone(browser: Any, emails: dict[str, Path],
                                                        slug: str) -> None:
    page = open_email(browser, emails[slug], 375)
    targets = page.evaluate(TARGETS_JS)
    texts = [target["text"] for target in targets]
    assert texts.count("Voir ce message dans le navigateur") == 2  # top and footer
    assert "Se désabonner" in texts
    for name in NAMED_TARGETS[slug]:
        assert name in texts, (name, texts)
    short = [(target["text"], target["height"]) for target in targets if target["height"] < 44]
    assert not short
    for index, first in enumerate(targets):
        for second in targets[index + 1:]:
            assert _gap(first, second) >= 3, (first, second)
    page.close()


def test_read_more_links_name_their_item(emails: dict[str, Path], browser: Any) -> None:
    page = open_email(browser, emails[NEWSLETTER], 600)
    texts = [text for text in page.evaluate(TARGETS_JS) if text["text"].startswith("Lire")]
    names = [text["text"] for text in texts]
    assert len(names) == 3 and len(set(names)) == 3
    assert "Lire la suite : « 19 janvier : l'emploi des jeunes des quartiers »" in names
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("slug", [REPLAY, EVENT])
def test_buttons_of_a_row_are_the_same_height(browser: Any, emails: dict[str, Path],
                                              slug: str, width: int) -> None:
    page = open_email(browser, emails[slug], width)
    buttons = page.evaluate(BUTTONS_JS)
    assert len(buttons) == 2 and buttons[0]["row"] == buttons[1]["row"]
    assert buttons[0]["height"] == buttons[1]["height"] >= 44
    assert buttons[0]["cell"] == buttons[1]["cell"]
    if width == 600:  # side by side
        assert buttons[0]["y"] == buttons[1]["y"]
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_images_fit_the_content_column(browser: Any, emails: dict[str, Path],
                                       width: int) -> None:
    page = open_email(browser, emails[NEWSLETTER], width)
    images = page.evaluate(
        "[...document.querySelectorAll('img')].map(i => [i.getBoundingClientRect().width,"
        " Number(i.getAttribute('width')), i.closest('td').style.width])")
    assert images
    for shown, attribute, cell in images:
        assert attribute == COLUMN and cell == f"{COLUMN}px"  # what Outlook reads
        assert shown <= min(COLUMN, width - 2 * 24)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.close()


@pytest.fixture(scope="module")
def logo_email(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The replay from a workspace with a logo for light backgrounds and one for dark."""
    ws = make_workspace(tmp_path_factory.mktemp("logo") / "ws")
    config = ws / "config.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        'logo_url = ""', 'logo_url = "https://example.org/logo.png"').replace(
        'logo_dark_url = ""', 'logo_dark_url = "https://example.org/logo-dark.png"'),
        encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ws)
        patch.delenv("CITESMAIL_SECRET", raising=False)
        assert run("render", REPLAY, "-o", "out").exit_code == 0
    return ws / "out" / f"{REPLAY}.html"


@pytest.mark.parametrize(("scheme", "shown", "hidden"), [
    ("light", "logo.png", "logo-dark.png"), ("dark", "logo-dark.png", "logo.png")])
def test_the_dark_logo_shows_in_dark_mode_only(browser: Any, logo_email: Path, scheme: str,
                                               shown: str, hidden: str) -> None:
    page = open_email(browser, logo_email, 600, scheme)
    assert page.locator(f"img[src$='/{shown}']").is_visible()
    assert not page.locator(f"img[src$='/{hidden}']").is_visible()
    page.close()


def test_the_preheader_is_hidden_and_blocked_images_show_styled_alt_text(
        browser: Any, emails: dict[str, Path]) -> None:
    page = open_email(browser, emails[NEWSLETTER], 600)
    assert page.locator("text=Ce mois-ci : le replay").count() == 1
    assert not page.locator("text=Ce mois-ci : le replay").is_visible()
    style = page.evaluate("(s => [s.fontFamily, s.color, s.fontSize])"
                          "(getComputedStyle(document.querySelector('img')))")
    assert style == ["Arial, Helvetica, sans-serif", "rgb(75, 85, 99)", "14px"]
    page.close()


def png(width: int, height: int) -> bytes:
    """A grey PNG image of that size."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    rows = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("width", WIDTHS)
def test_a_wide_image_in_the_body_stays_inside_the_column(browser: Any, workspace: Path,
                                                          width: int) -> None:
    write(workspace / "campaigns" / "plan.md",
          MINIMAL_REPLAY + "\n![Plan du quartier](https://example.org/plan.png)\n")
    assert run("render", "plan", "-o", "out").exit_code == 0
    image = png(1200, 300)
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.route("**/*", lambda route: route.fulfill(body=image, content_type="image/png")
               if route.request.url == "https://example.org/plan.png" else route.continue_()
               if route.request.url.startswith("file:") else route.abort())
    page.goto((workspace / "out" / "plan.html").as_uri())
    natural, shown = page.evaluate("(i => [i.naturalWidth, i.getBoundingClientRect().width])"
                                   "(document.querySelector('img[alt=\"Plan du quartier\"]'))")
    assert natural == 1200
    assert shown <= min(COLUMN, width - 2 * 24)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.close()
