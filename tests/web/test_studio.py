"""The studio's pages over HTTP against a real workspace (SQLite, a real send into the
outbox): campaigns and where each stands, lists, segments, a contact's history, the
report; French by default, English when the workspace says so; read-only."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from threading import Event

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import delete, insert, select
from starlette.testclient import TestClient

from citesmail.config import load_settings
from citesmail.db import ClickCount, Send, TrackedLink, open_database
from citesmail.delivery.sendlog import mark_missed
from citesmail.web.live import send_changes
from citesmail.web.preview import PreviewApp, create_preview_app
from tests.cli.test_delivery_commands import smtp_env, with_audience
from tests.conftest import EVENT, MINIMAL_REPLAY, NEWSLETTER, REPLAY, SECRET, run, write
from tests.smtp_server import SmtpServer

PREVIEW = "http://127.0.0.1"
SVG = "{http://www.w3.org/2000/svg}"
CLICKED = datetime(2026, 3, 2, 9, tzinfo=UTC)  # 10:00 in Paris
CITESMAIL = Path(sys.executable).parent / "citesmail"


def studio(workspace: Path) -> TestClient:
    settings = load_settings(workspace / "config.toml", environ={})
    return TestClient(create_preview_app(settings, settings.database_url), base_url=PREVIEW)


def cards(page: str) -> dict[str, str]:
    """Each campaign card's text, by the campaign file it shows."""
    shown = BeautifulSoup(page, "html.parser")
    return {card.select_one("[data-live]")["data-live"]: " ".join(card.get_text(" ").split())
            for card in shown.select("li.card")}


@pytest.fixture
def sent(workspace: Path) -> Path:
    """Two contacts; the replay sent to them (into the outbox), the event scheduled, a
    fourth campaign missed, the newsletter a draft."""
    with_audience(workspace, 2)
    assert run("lists", "add", "actu", "--public", "--title", "Actualités").exit_code == 0
    assert run("send", REPLAY, "--yes", env={"CITESMAIL_SECRET": SECRET}).exit_code == 0
    assert run("schedule", EVENT, "--at", "2031-01-19 09:30", "--segment",
               "partenaires-aura").exit_code == 0
    write(workspace / "campaigns" / "rate.md", MINIMAL_REPLAY)
    assert run("schedule", "rate", "--at", "2030-06-01 08:00", "--segment",
               "partenaires-aura").exit_code == 0
    db = open_database(load_settings(workspace / "config.toml", environ={}).database_url)
    mark_missed(db, "rate")  # as the worker does when the time passed without it
    db.close()
    return workspace


def test_the_campaigns_page_says_where_each_campaign_stands(sent: Path) -> None:
    with studio(sent) as client:
        page = client.get("/")
    assert page.status_code == 200 and '<html lang="fr">' in page.text
    shown = cards(page.text)
    assert "Envoyée le" in shown[REPLAY] and "(2 acceptés sur 2)" in shown[REPLAY]
    assert "Programmée le 19 janvier 2031 à 09:30" in shown[EVENT]
    assert "Manquée : prévue le 1 juin 2030 à 08:00" in shown["rate"]
    assert "Brouillon" in shown[NEWSLETTER]
    assert "Vérification : 3 avertissements" in shown[NEWSLETTER]
    links = BeautifulSoup(page.text, "html.parser")
    assert links.find("a", href=f"/campaigns/{REPLAY}/report") is not None
    assert links.find("a", href=f"/campaigns/{NEWSLETTER}/report") is None  # not sent
    for slug in (REPLAY, EVENT, NEWSLETTER):
        assert links.find("a", href=f"/campaigns/{slug}/eml") is not None
        assert links.find("a", href=f"/campaigns/{slug}") is not None


def test_the_lists_page(sent: Path) -> None:
    with studio(sent) as client:
        page = client.get("/lists")
    assert page.status_code == 200
    rows = {row.find("td").get_text(): [td.get_text() for td in row.find_all("td")]
            for row in BeautifulSoup(page.text, "html.parser").select("tbody tr")}
    assert rows == {"actu": ["actu", "Actualités", "publique", "0", "0"],
                    "aura": ["aura", "—", "privée", "2", "2"]}


def test_the_segments_page_counts_what_each_selects(sent: Path) -> None:
    assert run("segments", "add", "lyon", "--list", "aura", "--where",
               "territory=Lyon").exit_code == 0
    with studio(sent) as client:
        page = client.get("/segments")
    shown = {card.find("h2").get_text(): " ".join(card.get_text(" ").split())
             for card in BeautifulSoup(page.text, "html.parser").select("li.card")}
    assert "2 contacts" in shown["partenaires-aura"]
    assert "inscrits à : aura" in shown["partenaires-aura"]
    assert "0 contact " in shown["lyon"] + " " and "et : territory=Lyon" in shown["lyon"]


def test_a_contacts_history(sent: Path) -> None:
    assert run("contacts", "unsubscribe", "p1@example.org").exit_code == 0
    with studio(sent) as client:
        empty = client.get("/contacts")
        page = client.get("/contacts", params={"email": "P1@example.org"})
        unknown = client.get("/contacts", params={"email": "nobody@example.org"})
    assert empty.status_code == 200 and 'name="email"' in empty.text
    assert page.status_code == 200
    text = " ".join(unescape(BeautifulSoup(page.text, "html.parser").get_text(" ")).split())
    assert "p1@example.org" in text and "Statut désabonné" in text
    assert "Listes aura" in text
    assert "importé" in text and "désabonnement de tout" in text  # consent events
    assert "c.csv" in text  # the import's source
    assert f"{REPLAY} : envoyé" in text.replace(f"{REPLAY}:", f"{REPLAY} :")
    assert unknown.status_code == 404
    assert "Aucun contact n'a l'adresse nobody@example.org." in unescape(unknown.text)


def test_the_report_page(sent: Path) -> None:
    with studio(sent) as client:
        report = client.get(f"/campaigns/{REPLAY}/report")
        draft = client.get(f"/campaigns/{NEWSLETTER}/report")
        campaign = client.get(f"/campaigns/{REPLAY}")
    assert report.status_code == 200
    numbers = [" ".join(li.get_text(" ").split()) for li in
               BeautifulSoup(report.text, "html.parser").select("ul.numbers li")]
    assert "2 destinataires" in numbers and "2 acceptés par leur serveur" in numbers
    assert draft.status_code == 404 and "pas encore de bilan" in unescape(draft.text)
    assert f'href="/campaigns/{REPLAY}/report"' in campaign.text


def test_the_studio_in_english_when_the_workspace_is(sent: Path) -> None:
    config = sent / "config.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        '[campaigns]\n', '[campaigns]\nlang = "en"\n', 1).replace('lang = "fr"\n', ''),
        encoding="utf-8")
    with studio(sent) as client:
        index, lists = client.get("/"), client.get("/lists")
        contact = client.get("/contacts", params={"email": "p0@example.org"})
        preview = client.get(f"/campaigns/{REPLAY}")
    assert '<html lang="en">' in index.text
    shown = cards(index.text)
    assert "Scheduled for January 19, 2031 at 9:30" in shown[EVENT]
    assert "Draft" in shown[NEWSLETTER] and "3 warnings" in shown[NEWSLETTER]
    assert "Campagnes" not in index.text and "Campaigns" in index.text
    assert "Offered to people" in lists.text and "private" in lists.text
    assert "imported" in contact.text and "Status" in contact.text
    assert "download .eml" in preview.text


def test_the_studio_changes_nothing(sent: Path) -> None:
    """Its pages answer GET only: a POST to one is refused, and the database is the same
    after every page was read."""
    database = sent / "citesmail.db"
    before = database.read_bytes()
    with studio(sent) as client:
        for url in ("/", "/lists", "/segments", "/contacts?email=p0@example.org",
                    f"/campaigns/{REPLAY}/report"):
            assert client.get(url).status_code == 200
            assert client.post(url).status_code == 405
    assert database.read_bytes() == before


def test_the_stream_tells_a_running_sends_numbers_then_its_end(workspace: Path) -> None:
    """A send held at its second message by the SMTP server: the stream says 1 of 2,
    then, once the server lets it through, that the send is over."""
    with_audience(workspace, 2)
    settings = load_settings(workspace / "config.toml", environ={})
    app = PreviewApp(settings, settings.database_url)
    with SmtpServer() as server:
        gate = server.handler.hold["p1@example.org"] = Event()
        sending = subprocess.Popen(
            [str(CITESMAIL), "send", REPLAY, "--yes"], cwd=workspace,
            env={**os.environ, **smtp_env(server.port), "CITESMAIL_DELIVERY_CONNECTIONS": "1"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            seen = asyncio.run(_follow(app, gate))
        finally:
            gate.set()
            sending.wait(timeout=60)
    assert "Envoi en cours : 1 sur 2" in seen
    assert any(text.startswith("Envoyée le") and "(2 acceptés sur 2)" in text
               for text in seen)


async def _follow(app: PreviewApp, gate: Event) -> list[str]:
    seen: list[str] = []
    stream = send_changes(app.settings, app.settings.database_url, app.stage_labels,
                          poll=0.05)
    async for message in stream:
        if not message.startswith("data: "):
            continue
        text = json.loads(message.removeprefix("data: "))[REPLAY]
        seen.append(text)
        if text == "Envoi en cours : 1 sur 2":
            gate.set()  # the page saw the send half-way: let it finish
        if text.startswith("Envoyée"):
            break
    await stream.aclose()
    return seen


def test_a_workspace_without_a_database_has_empty_studio_pages(workspace: Path) -> None:
    settings = load_settings(workspace / "config.toml", environ={})
    with TestClient(create_preview_app(settings, None), base_url=PREVIEW) as client:
        for url in ("/lists", "/segments", "/contacts?email=a@example.org"):
            page = client.get(url)
            assert page.status_code == 200
            assert "pas encore de base de données" in unescape(page.text)
        assert "Brouillon" in client.get("/").text


def add_clicks(workspace: Path) -> None:
    """After the real send: two counted links and clicks over two hours, as `serve`
    would have counted them."""
    db = open_database(load_settings(workspace / "config.toml", environ={}).database_url)
    with db.session() as session:
        assert session.scalar(select(Send.clicks).where(Send.campaign == REPLAY)) == "aggregate"
        session.execute(delete(TrackedLink))
        session.execute(insert(TrackedLink), [
            {"campaign": REPLAY, "number": 1, "url": "https://example.org/video"},
            {"campaign": REPLAY, "number": 2, "url": "https://example.org/diapositives.pdf"}])
        session.execute(insert(ClickCount), [
            {"campaign": REPLAY, "number": 1, "hour": CLICKED, "clicks": 1200, "automated": 3},
            {"campaign": REPLAY, "number": 2, "hour": CLICKED + timedelta(hours=1),
             "clicks": 34, "automated": 0}])
    db.close()


def charts(page: str) -> dict[str, ET.Element]:
    """Each chart of the page (inline SVG, parsed as XML) by its visible title."""
    shown = BeautifulSoup(page, "html.parser")
    found: dict[str, ET.Element] = {}
    for figure in shown.select("figure.chart"):
        (svg,) = figure.find_all("svg")
        root = ET.fromstring(str(svg))
        assert root.get("role") == "img" and not list(root.iter(f"{SVG}script"))
        assert root.find(f"{SVG}title").text == figure.h2.get_text()
        found[figure.h2.get_text()] = root
    assert not shown.find("img") and not shown.find("script", src=True)
    return found


def test_the_report_page_draws_its_four_charts_in_french(sent: Path) -> None:
    add_clicks(sent)
    with studio(sent) as client:
        page = client.get(f"/campaigns/{REPLAY}/report").text
    assert list(charts(page)) == ["Messages acceptés par heure (Europe/Paris)",
                                  "Clics par heure (Europe/Paris)",
                                  "Messages en échec par raison", "Clics par lien"]
    text = " ".join(unescape(BeautifulSoup(page, "html.parser").get_text(" ")).split())
    # the sentences are visible, in French, numbers and hours in French style (split()
    # made the narrow no-break space between thousands a space)
    assert ("1 234 clics de personnes du 2 mars à 10:00 au 2 mars à 11:00 ; le plus "
            "grand nombre, 1 200, dans l'heure du 2 mars à 10:00.") in text
    assert "Aucun des 2 messages n'a échoué." in text
    assert "1 234 clics de personnes sur 2 liens" in text
    assert "2 messages acceptés, tous dans l'heure du" in text
    assert "https://example.org/video 1 200 3" in text  # the table under the chart


def test_the_report_page_draws_its_charts_in_english(sent: Path) -> None:
    add_clicks(sent)
    config = sent / "config.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        '[campaigns]\n', '[campaigns]\nlang = "en"\n', 1).replace('lang = "fr"\n', ''),
        encoding="utf-8")
    with studio(sent) as client:
        page = client.get(f"/campaigns/{REPLAY}/report").text
    assert list(charts(page)) == ["Messages accepted per hour (Europe/Paris)",
                                  "Clicks per hour (Europe/Paris)",
                                  "Failed messages by reason", "Clicks per link"]
    assert "1,234 clicks by people on 2 links; the most, 1,200, on https://example.org/video." \
        in unescape(page)
