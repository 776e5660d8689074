"""The sign-up in a real Chromium against a real `citesmail serve`: fill the form, find
the confirmation in the outbox, open its link, press the button. axe-core finds no WCAG
A/AA violation on the pages; at 375 and 1280 px nothing scrolls sideways."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTEFACTS, ROOT, SECRET, run
from tests.render.test_browser import ARGS, CHROMIUM
from tests.smtp_server import free_port
from tests.web.test_public import CITESMAIL
from tests.web.test_signup_serve import wait_until_up

AXE = ROOT / "benchmarks" / ".cache" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
SCREENSHOTS = ARTEFACTS / "screenshots" / "signup"
WIDTHS = [375, 1280]
WAIT = 60.0


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} (scripts/test.sh installs it)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing: apt-get install chromium")
    if not AXE.exists():
        _missing(f"{AXE} is missing: npm install --prefix benchmarks/.cache axe-core@4")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=ARGS)
        yield instance
        instance.close()


def violations(page: Any) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})",
                           WCAG_TAGS)
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in result["violations"]]


def check_layout(browser: Any, url: str, name: str, widths: list[int] = WIDTHS) -> None:
    """Screenshots at each width; the page never wider than the window."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in widths:
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(url)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - "
                                 "document.documentElement.clientWidth")
        assert overflow <= 0, f"{name} at {width} px scrolls sideways by {overflow} px"
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
        page.close()


def wait_for_message(folder: Path) -> bytes:
    deadline = time.monotonic() + WAIT
    while not (folder.exists() and any(folder.iterdir())):
        assert time.monotonic() < deadline, "no confirmation in the outbox"
        time.sleep(0.1)
    [path] = list(folder.iterdir())
    return path.read_bytes()


@pytest.fixture
def serve(workspace: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """`citesmail serve` on the workspace; a test marked `tracking` gets its settings."""
    assert run("lists", "add", "actu", "--public", "--title", "Actualités du réseau",
               "--description", "Une lettre par mois").exit_code == 0
    assert run("lists", "add", "emploi", "--public", "--title", "Emploi").exit_code == 0
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    marker = request.node.get_closest_marker("tracking")
    env = {**os.environ, "CITESMAIL_SECRET": SECRET, "CITESMAIL_UNSUBSCRIBE_BASE_URL": base,
           **(marker.kwargs if marker else {})}
    server = subprocess.Popen([str(CITESMAIL), "serve", "--port", str(port)], cwd=workspace,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(f"{base}/s/actu")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_sign_up_and_confirm_in_chromium(browser: Any, serve: str, workspace: Path) -> None:
    base = serve
    check_layout(browser, f"{base}/s/actu", "form")
    # bypass_csp: the pages allow no script, and axe-core is one
    page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page.goto(f"{base}/s/actu")
    assert violations(page) == []
    page.get_by_label("Adresse e-mail").fill("camille@example.org")
    page.get_by_label("Prénom").fill("Camille")
    page.get_by_label("Emploi").check()
    page.get_by_label("J'accepte de recevoir").check()
    page.get_by_role("button", name="M'inscrire").click()
    page.wait_for_load_state()
    assert "Vérifiez votre boîte aux lettres" in page.content()
    assert violations(page) == []
    message = message_from_bytes(wait_for_message(workspace / "outbox" / "new"),
                                 policy=policy.default)
    assert message["To"] == "camille@example.org"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = next(word for word in text.split() if word.startswith(f"{base}/confirm/"))
    check_layout(browser, link, "confirm")
    page.goto(link)
    assert violations(page) == []
    assert "status:        pending" in run("contacts", "show", "camille@example.org").stdout
    page.get_by_role("button", name="Confirmer mon inscription").click()
    page.wait_for_load_state()
    assert "inscription est confirmée" in page.content()
    assert violations(page) == []
    shown = run("contacts", "show", "camille@example.org").stdout
    assert "status:        active" in shown
    lists_line = next(line for line in shown.splitlines() if line.startswith("lists:"))
    assert "actu" in lists_line and "emploi" in lists_line
    page.close()


@pytest.mark.tracking(CITESMAIL_TRACKING_CLICKS="individual")
def test_sign_up_with_the_measurement_box_in_chromium(browser: Any, serve: str,
                                                       workspace: Path) -> None:
    base = serve
    check_layout(browser, f"{base}/s/actu", "form-measurement", [390, 1280])
    page = browser.new_page(viewport={"width": 390, "height": 900}, bypass_csp=True)
    page.goto(f"{base}/s/actu")
    assert violations(page) == []
    box = page.get_by_label("J'accepte que")
    assert not box.is_checked()
    page.get_by_label("Adresse e-mail").fill("camille@example.org")
    page.get_by_label("J'accepte de recevoir").check()
    box.check()
    page.get_by_role("button", name="M'inscrire").click()
    page.wait_for_load_state()
    assert "Vérifiez votre boîte aux lettres" in page.content()
    assert "measurement:   no" in run("contacts", "show", "camille@example.org").stdout
    message = message_from_bytes(wait_for_message(workspace / "outbox" / "new"),
                                 policy=policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    page.goto(next(word for word in text.split() if word.startswith(f"{base}/confirm/")))
    page.get_by_role("button", name="Confirmer mon inscription").click()
    page.wait_for_load_state()
    shown = run("contacts", "show", "camille@example.org").stdout
    assert "measurement:   yes" in shown and "measurement_given (confirmation link)" in shown
    page.close()
