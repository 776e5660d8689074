"""The studio in a real Chromium against a real `citesmail preview`: screenshots at 390
and 1280 px of the campaigns, report, lists and contact pages, nothing wider than the
window, axe-core without a WCAG A/AA violation, and the campaigns page following a send
as it runs (the SMTP server holds the last message until the page has shown 1 of 2)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from threading import Event
from typing import Any

import pytest

from tests.cli.test_delivery_commands import smtp_env, with_audience
from tests.conftest import ARTEFACTS, EVENT, REPLAY, SECRET, run
from tests.smtp_server import SmtpServer, free_port
from tests.web.test_preview import CITESMAIL, _serve
from tests.web.test_signup_browser import browser, violations  # noqa: F401  (fixture)
from tests.web.test_studio import add_clicks

SCREENSHOTS = ARTEFACTS / "screenshots" / "studio"
WIDTHS = [390, 1280]
WAIT_MS = 60_000


@pytest.fixture
def studio(workspace: Path) -> Iterator[str]:
    """`citesmail preview` on a workspace with a sent campaign (with clicks) and a
    scheduled one."""
    with_audience(workspace, 2)
    assert run("lists", "add", "actu", "--public", "--title",
               "Actualités du réseau et des territoires").exit_code == 0
    assert run("send", REPLAY, "--yes", env={"CITESMAIL_SECRET": SECRET}).exit_code == 0
    assert run("schedule", EVENT, "--at", "2031-01-19 09:30", "--segment",
               "partenaires-aura").exit_code == 0
    add_clicks(workspace)
    port = free_port()
    server = _serve(["preview", "--no-browser"], workspace, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=20)


def _look(browser: Any, url: str, name: str) -> None:  # noqa: F811
    """At each width: a screenshot, no sideways scroll, no WCAG A/AA violation, and no
    script refused by the page's CSP."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        refused: list[str] = []
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.on("console", lambda message, seen=refused: seen.append(message.text)
                if "Content Security Policy" in message.text else None)
        page.goto(url)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - "
                                 "document.documentElement.clientWidth")
        assert overflow <= 0, f"{name} at {width} px scrolls sideways by {overflow} px"
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
        assert refused == [], refused
        page.close()
    # bypass_csp: axe-core is a script the page's CSP does not allow
    checked = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    checked.goto(url)
    assert violations(checked) == [], name
    checked.close()


def test_studio_pages_in_chromium(browser: Any, studio: str) -> None:  # noqa: F811
    for path, name in (("/", "campaigns"), (f"/campaigns/{REPLAY}/report", "report"),
                       ("/lists", "lists"), ("/segments", "segments"),
                       ("/contacts?email=p0@example.org", "contact")):
        _look(browser, studio + path, name)
    page = browser.new_page(viewport={"width": 390, "height": 900})
    page.goto(studio + "/")
    page.get_by_role("link", name="Listes").click()
    page.wait_for_url("**/lists")
    page.get_by_role("link", name="Contacts").click()
    page.get_by_label("Adresse e-mail").fill("p1@example.org")
    page.get_by_role("button", name="Rechercher").click()
    page.wait_for_url("**/contacts?email=p1%40example.org")
    assert page.get_by_role("heading", name="p1@example.org").is_visible()
    page.close()


def test_the_report_charts_fit_the_window(browser: Any, studio: str) -> None:  # noqa: F811
    """The four inline SVG charts are drawn at the width of their column, never wider
    than the window, their aspect kept (480 × 270), and named for assistive technologies."""
    for width in WIDTHS:
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{studio}/campaigns/{REPLAY}/report")
        charts = page.get_by_role("img")
        assert charts.count() == 4
        assert charts.nth(1).get_attribute("aria-labelledby")
        assert page.get_by_role("img", name="Clics par lien").count() == 1
        boxes = [charts.nth(n).bounding_box() for n in range(4)]
        window = page.evaluate("() => document.documentElement.clientWidth")
        for box in boxes:
            assert box is not None and 0 < box["width"] <= window
            assert abs(box["width"] * 270 / 480 - box["height"]) < 2
        page.close()


def test_the_campaigns_page_follows_a_send(browser: Any, workspace: Path) -> None:  # noqa: F811
    with_audience(workspace, 2)
    port = free_port()
    server = _serve(["preview", "--no-browser"], workspace, port)
    try:
        page = browser.new_page(viewport={"width": 390, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/")
        stage = page.locator(f'[data-live="{REPLAY}"]')
        assert stage.inner_text() == "Brouillon"
        with SmtpServer() as smtp:
            gate = smtp.handler.hold["p1@example.org"] = Event()
            sending = subprocess.Popen(
                [str(CITESMAIL), "send", REPLAY, "--yes"], cwd=workspace,
                env={**os.environ, **smtp_env(smtp.port),
                     "CITESMAIL_DELIVERY_CONNECTIONS": "1"},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                # no reload: the same page shows the send's numbers as they move
                page.wait_for_function(
                    "slug => document.querySelector(`[data-live='${slug}']`).textContent"
                    " === 'Envoi en cours : 1 sur 2'", arg=REPLAY, timeout=WAIT_MS)
                gate.set()
                page.wait_for_function(
                    "slug => document.querySelector(`[data-live='${slug}']`).textContent"
                    ".startsWith('Envoyée le')", arg=REPLAY, timeout=WAIT_MS)
            finally:
                gate.set()
                assert sending.wait(timeout=60) == 0
        assert "(2 acceptés sur 2)" in stage.inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "campaigns-after-send-390.png"), full_page=True)
    finally:
        server.terminate()
        server.wait(timeout=20)
