"""The preference centre in a real Chromium against a real `citesmail serve`: from the
email in the outbox to a list left, its event recorded; axe-core finds no WCAG A/AA
violation; the page fits a phone and a desktop without scrolling sideways."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTEFACTS, REPLAY, ROOT, SECRET, run
from tests.smtp_server import free_port
from tests.web.test_preferences import make_audience
from tests.web.test_public import CITESMAIL, sent_messages

CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "benchmarks" / ".cache" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
SCREENSHOTS = ARTEFACTS / "screenshots"


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test.sh does)")
    if not AXE.exists():
        _missing(f"{AXE} is missing: npm install --prefix benchmarks/.cache axe-core@4 "
                 "(scripts/test.sh does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield instance
        instance.close()


def _wait_for_port(port: int, server: subprocess.Popen[bytes]) -> None:
    """Until `serve` accepts connections (or has died: then fail with what it said)."""
    while True:
        assert server.poll() is None, "citesmail serve stopped (see serve.log)"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)


@pytest.fixture
def served(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A send to the outbox, and `citesmail serve` behind its links: (base URL, the
    first message's HTML part as a file)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("CITESMAIL_UNSUBSCRIBE_BASE_URL", base)
    monkeypatch.setenv("CITESMAIL_SECRET", SECRET)
    make_audience(workspace)
    assert run("send", REPLAY, "--yes").exit_code == 0
    message = next(m for m in sent_messages(workspace)
                   if m["To"].addresses[0].addr_spec == "p0@example.org")
    html = workspace / "p0.html"
    html.write_text(message.get_body(("html",)).get_content(), encoding="utf-8")
    with (workspace / "serve.log").open("wb") as log:
        server = subprocess.Popen([str(CITESMAIL), "serve", "--port", str(port)],
                                  cwd=workspace, env={**os.environ},
                                  stdout=subprocess.DEVNULL, stderr=log)
        try:
            _wait_for_port(port, server)
            yield base, html
        finally:
            server.terminate()
            server.wait(timeout=30)


def _lists(address: str) -> str:
    shown = run("contacts", "show", address).stdout
    return next(line for line in shown.splitlines() if line.startswith("lists:"))


def test_leave_a_list_from_the_email_in_a_browser(browser: Any, served: tuple[str, Path],
                                                  workspace: Path) -> None:
    base, html = served
    context = browser.new_context(viewport={"width": 375, "height": 800})
    page = context.new_page()
    page.goto(html.as_uri())
    with page.expect_navigation():
        page.get_by_role("link", name="Gérer mes abonnements").click()
    assert page.url.startswith(f"{base}/p/")
    assert page.get_by_role("checkbox", name="Lettre mensuelle").is_checked()
    page.get_by_role("checkbox", name="Lettre mensuelle").uncheck()
    with page.expect_navigation():
        page.get_by_role("button", name="Enregistrer mes choix").click()
    assert page.get_by_role("status").inner_text() == "C'est enregistré."
    assert not page.get_by_role("checkbox", name="Lettre mensuelle").is_checked()
    assert page.get_by_role("checkbox", name="Partenaires AURA").is_checked()
    context.close()
    assert "lettre" not in _lists("p0@example.org")
    assert "aura" in _lists("p0@example.org")
    shown = run("contacts", "show", "p0@example.org").stdout
    assert "list_unsubscribe" in shown and "serve: preference page" in shown


@pytest.mark.parametrize("width", [375, 1280])
def test_page_is_accessible_and_fits(browser: Any, served: tuple[str, Path],
                                     width: int) -> None:
    _, html = served
    # axe is injected as a script, which the page's CSP forbids (rightly)
    context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.goto(html.as_uri())
    with page.expect_navigation():
        page.get_by_role("link", name="Gérer mes abonnements").click()
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS)
    assert [(rule["id"], len(rule["nodes"])) for rule in result["violations"]] == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    targets = page.evaluate("""[...document.querySelectorAll('label, button')]
        .map(e => e.getBoundingClientRect().height)""")
    assert targets and min(targets) >= 44
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"preferences-{width}.png"), full_page=True)
    context.close()


@pytest.fixture
def measuring(monkeypatch: pytest.MonkeyPatch) -> None:
    """Individual click measurement, for `served` (asked for after this one)."""
    monkeypatch.setenv("CITESMAIL_TRACKING_CLICKS", "individual")


@pytest.mark.usefixtures("measuring")
@pytest.mark.parametrize("width", [390, 1280])
def test_measurement_box_given_accessible_and_fits(browser: Any, served: tuple[str, Path],
                                                   width: int) -> None:
    _, html = served
    context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.goto(html.as_uri())
    with page.expect_navigation():
        page.get_by_role("link", name="Gérer mes abonnements").click()
    box = page.get_by_role("checkbox", name="J'accepte que")
    assert not box.is_checked()
    box.check()
    with page.expect_navigation():
        page.get_by_role("button", name="Enregistrer mes choix").click()
    assert page.get_by_role("checkbox", name="J'accepte que").is_checked()
    assert "measurement:   yes" in run("contacts", "show", "p0@example.org").stdout
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS)
    assert [(rule["id"], len(rule["nodes"])) for rule in result["violations"]] == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"preferences-measurement-{width}.png"),
                    full_page=True)
    context.close()
