"""The preview app: in-process routes, then a real `citesmail preview` in Chromium with
live reload, and an unsubscribe followed in the browser through `citesmail serve`."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from email import policy
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from citesmail.config import load_settings
from citesmail.web.preview import create_preview_app
from tests.cli.test_delivery_commands import smtp_env, with_audience
from tests.conftest import MINIMAL_REPLAY, NEWSLETTER, REPLAY, ROOT, SECRET, run, write
from tests.render.test_browser import ARGS, CHROMIUM, browser  # noqa: F401  (the browser fixture)
from tests.smtp_server import SmtpServer, free_port

CITESMAIL = Path(sys.executable).parent / "citesmail"
ARTEFACTS = ROOT / "test-artefacts"
PREVIEW = "http://127.0.0.1"  # the preview answers to this machine's names only


@pytest.fixture
def client(workspace: Path) -> Iterator[TestClient]:
    with_audience(workspace, 2)
    settings = load_settings(workspace / "config.toml", environ={})
    app = create_preview_app(settings, settings.database_url)
    with TestClient(app, base_url=PREVIEW) as test_client:
        yield test_client


def test_index_lists_every_campaign_with_its_check(client: TestClient,
                                                   workspace: Path) -> None:
    write(workspace / "campaigns" / "casse.md", "pas de front matter\n")
    page = client.get("/")
    assert page.status_code == 200
    assert "Les cités de l'emploi" in unescape(page.text)  # (&#39; or &#x27;, the same)
    for slug in (REPLAY, "2026-12-15-lettre-decembre", "casse"):
        assert f'href="/campaigns/{slug}"' in page.text
    assert "campaigns/casse.md:1: no front matter" in page.text


def test_campaign_page_parts_and_recipient_picker(client: TestClient) -> None:
    page = client.get(f"/campaigns/{REPLAY}")
    assert page.status_code == 200
    for expected in ("Labo Cités &lt;annonces@example.org&gt;", "la visio du 12 juin",
                     'width="375"', 'width="620"', "sur les 102 Ko de Gmail",
                     "télécharger le .eml", "envoyer un test", "EventSource('/events')"):
        assert expected in page.text
    assert "p0@example.org" in page.text  # a contact to preview as
    as_contact = client.get(f"/campaigns/{REPLAY}/text?as=p0@example.org")
    assert "Bonjour à toutes et à tous," in as_contact.text  # p0 has no first name
    assert "Bonjour Camille," in client.get(f"/campaigns/{REPLAY}/text?as=:sample").text
    html = client.get(f"/campaigns/{REPLAY}/html")
    assert html.text.startswith("<!DOCTYPE html>")
    eml = client.get(f"/campaigns/{REPLAY}/eml")
    message = email.message_from_bytes(eml.content, policy=policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert client.get("/campaigns/nope").status_code == 404
    assert client.get(f"/campaigns/{REPLAY}/etc").status_code == 404
    rebound = client.get("/", headers={"host": "evil.example"})
    assert rebound.status_code == 400  # a page elsewhere cannot read the preview
    assert 'sandbox="allow-popups"' in page.text


def test_a_title_with_markup_is_shown_as_text(client: TestClient, workspace: Path) -> None:
    title = '<script>alert("x")</script> & co'
    write(workspace / "campaigns" / "x.md", MINIMAL_REPLAY.replace(
        'title = "Un titre"', f"title = '{title}'"))
    for url in ("/", "/campaigns/x"):
        page = client.get(url).text
        assert page.count("<script>") == 1  # the reload script, no other
        assert "&lt;script&gt;alert(" in page
        shown = BeautifulSoup(page, "html.parser")
        assert shown.find("a" if url == "/" else "h1", string=title) is not None


def test_an_event_page_offers_its_invitation(client: TestClient) -> None:
    event = "2027-01-19-invitation-emploi-des-jeunes"
    page = client.get(f"/campaigns/{event}")
    assert f'href="/campaigns/{event}/ics">invitation .ics' in page.text
    ics = client.get(f"/campaigns/{event}/ics")
    assert ics.status_code == 200 and ics.headers["content-type"].startswith("text/calendar")
    assert "METHOD:PUBLISH" in ics.text and f"UID:{event}@example.org" in ics.text
    assert "invitation .ics" not in client.get(f"/campaigns/{REPLAY}").text
    assert client.get(f"/campaigns/{REPLAY}/ics").status_code == 404


def test_broken_file_shows_its_error_and_the_server_keeps_running(
        client: TestClient, workspace: Path) -> None:
    write(workspace / "campaigns" / "b.md", MINIMAL_REPLAY.replace('title = "Un titre"',
                                                                  "title = Un titre"))
    page = client.get("/campaigns/b")
    assert page.status_code == 200 and "campaigns/b.md:5:9: TOML syntax error" in page.text
    assert client.get(f"/campaigns/{REPLAY}").status_code == 200


def test_send_a_test_from_the_page(workspace: Path) -> None:
    with SmtpServer() as server:
        os.environ.update(smtp_env(server.port))
        try:
            settings = load_settings(workspace / "config.toml")
            with TestClient(create_preview_app(settings, None),
                            base_url=PREVIEW) as test_client:
                forged = test_client.post(f"/campaigns/{REPLAY}/test",
                                          data={"to": "moi@example.org"})
                assert forged.status_code == 403  # not from the preview page's form
                page = test_client.get(f"/campaigns/{REPLAY}").text
                token = page.split('name="token" value="')[1].split('"')[0]
                done = test_client.post(f"/campaigns/{REPLAY}/test",
                                        data={"to": "moi@example.org", "token": token})
        finally:
            for key in smtp_env(server.port):
                os.environ.pop(key, None)
    assert done.status_code == 200 and "moi@example.org: envoyé" in done.text
    assert server.handler.received == {"moi@example.org": 1}


def _serve(command: list[str], workspace: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([str(CITESMAIL), *command, "--port", str(port)],
                               cwd=workspace, env={**os.environ},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"citesmail {command[0]} did not start")


def _frame_text(page: Any, title: str) -> str:
    return str(page.frame_locator(f"iframe[title={title}]").locator("body").inner_text())


def test_live_preview_in_chromium(browser: Any, workspace: Path) -> None:  # noqa: F811
    port = free_port()
    server = _serve(["preview", "--no-browser"], workspace, port)
    try:
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
            f"http://127.0.0.1:{port}") else route.abort())
        page.goto(f"http://127.0.0.1:{port}/campaigns/{REPLAY}")
        text = _frame_text(page, "phone")
        for expected in ("Les cités de l'emploi", "Céline Mourier", "Alix Humbert",
                         "Voir le replay", "Télécharger le support"):
            assert expected in text.replace("\u00a0", " ")
        ARTEFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTEFACTS / "preview-desktop.png"), full_page=True)
        phone = browser.new_page(viewport={"width": 375, "height": 800})
        phone.goto(f"http://127.0.0.1:{port}/campaigns/{REPLAY}/html")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375
        for visible in (phone.locator("h1"), phone.get_by_text("Céline Mourier"),
                        phone.get_by_role("link", name="Voir le replay"),
                        phone.get_by_role("link", name="Télécharger le support")):
            assert visible.first.is_visible()
        phone.screenshot(path=str(ARTEFACTS / "preview-375.png"), full_page=True)
        source = workspace / "campaigns" / f"{REPLAY}.md"
        time.sleep(0.5)  # the page's event stream is connected
        source.write_text(source.read_text(encoding="utf-8").replace(
            'title = "Les cités', 'title = "MODIFIÉ : les cités'), encoding="utf-8")
        deadline = time.monotonic() + 10
        while "MODIFIÉ" not in _frame_text(page, "desktop") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "MODIFIÉ" in _frame_text(page, "desktop")  # no manual reload
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_preview_pages_fit_a_phone_and_name_their_fields(browser: Any,  # noqa: F811
                                                         workspace: Path) -> None:
    port = free_port()
    server = _serve(["preview", "--no-browser"], workspace, port)
    try:
        phone = browser.new_page(viewport={"width": 375, "height": 800})
        refused: list[str] = []  # a script the page's CSP blocks says so on the console
        phone.on("console", lambda message: refused.append(message.text)
                 if "Content Security Policy" in message.text else None)
        for url in ("/", f"/campaigns/{REPLAY}"):
            phone.goto(f"http://127.0.0.1:{port}{url}")
            assert phone.evaluate("document.documentElement.scrollWidth") <= 375, url
            assert phone.locator('meta[name="viewport"]').count() == 1
        for label in ("Aperçu pour", "Envoyer à"):
            assert phone.get_by_label(label).is_visible()
        desktop, small = (phone.locator(f"iframe[title={t}]").bounding_box()
                          for t in ("desktop", "phone"))
        assert desktop is not None and small is not None
        assert small["y"] >= desktop["y"] + desktop["height"]  # stacked, not side by side
        ARTEFACTS.mkdir(exist_ok=True)
        phone.screenshot(path=str(ARTEFACTS / "preview-page-375.png"), full_page=True)
        assert refused == []
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_unsubscribe_in_chromium_through_serve(browser: Any, workspace: Path) -> None:  # noqa: F811
    port = free_port()
    os.environ["CITESMAIL_UNSUBSCRIBE_BASE_URL"] = f"http://127.0.0.1:{port}"
    os.environ["CITESMAIL_SECRET"] = SECRET
    try:
        [address] = with_audience(workspace, 1)
        assert run("send", REPLAY, "--yes").exit_code == 0
        [path] = (workspace / "outbox" / "new").iterdir()
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        link = message.get_body(("html",)).get_content().split('href="')
        url = next(part.split('"')[0] for part in link if "/u/" in part.split('"')[0])
        server = _serve(["serve"], workspace, port)
        try:
            page = browser.new_page()
            page.goto(url)
            page.get_by_role("button").click()
            page.wait_for_load_state()
            assert "C'est fait" in unescape(page.content())
        finally:
            server.terminate()
            server.wait(timeout=20)
        shown = run("contacts", "show", address).stdout
        assert "status:        unsubscribed" in shown
    finally:
        del os.environ["CITESMAIL_UNSUBSCRIBE_BASE_URL"]
        del os.environ["CITESMAIL_SECRET"]


def test_preview_and_check_both_warn_of_an_audience_that_is_no_segment(
        client: TestClient) -> None:
    checked = run("check", NEWSLETTER)  # the database exists: with_audience made it
    [line] = [line for line in checked.stdout.splitlines() if "audience:" in line]
    assert "warning: audience: unknown segment 'abonnes-lettre'" in line
    page = BeautifulSoup(client.get(f"/campaigns/{NEWSLETTER}").text, "html.parser")
    shown = [li.get_text() for li in page.select("li.warning")]
    assert line.replace(": warning: ", ": ", 1) in shown  # the same words
    assert not any("audience" in li.get_text() for li in BeautifulSoup(
        client.get(f"/campaigns/{REPLAY}").text, "html.parser").select("li"))
    row = BeautifulSoup(client.get("/").text, "html.parser").find(
        "a", href=f"/campaigns/{NEWSLETTER}")
    assert row is not None and "3 avertissements" in row.find_parent("li").get_text()  # + config
    # (the config's two: its example values, and DKIM signing off)


def test_preview_as_an_address_that_is_not_a_contact_says_so(client: TestClient) -> None:
    page = client.get(f"/campaigns/{REPLAY}?as=nobody@example.org")
    assert page.status_code == 200
    assert ("nobody@example.org n'est pas un contact : aperçu pour le destinataire "
            "d'exemple" in unescape(page.text))
    shown = client.get(f"/campaigns/{REPLAY}?as=p0@example.org")
    assert "is not a contact" not in shown.text


def test_the_test_send_address_answers_405_to_a_get(client: TestClient) -> None:
    answer = client.get(f"/campaigns/{REPLAY}/test")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"


def test_the_preview_shows_the_first_contact_of_the_audience_by_default(
        workspace: Path) -> None:
    (workspace / "c.csv").write_text("email;prénom\nzoe@lyon.fr;Zoé\nanne@lyon.fr;Anne\n",
                                     encoding="utf-8")
    assert run("lists", "add", "aura").exit_code == 0
    assert run("contacts", "import", "c.csv", "--list", "aura").exit_code == 0
    assert run("segments", "add", "partenaires-aura", "--list", "aura").exit_code == 0
    settings = load_settings(workspace / "config.toml", environ={})
    app = create_preview_app(settings, settings.database_url)
    with TestClient(app, base_url=PREVIEW) as client:
        assert "Bonjour Zoé," in client.get(f"/campaigns/{REPLAY}/text").text
        page = unescape(client.get(f"/campaigns/{REPLAY}").text)
        assert "premier contact du segment partenaires-aura (zoe@lyon.fr)" in page
        no_name = client.get(f"/campaigns/{REPLAY}/text?as=:no-first-name").text
        assert "Bonjour à toutes et à tous," in no_name
        sample = client.get(f"/campaigns/{REPLAY}/text?as=:sample").text
        assert "Bonjour Camille," in sample
