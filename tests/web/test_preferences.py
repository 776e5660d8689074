"""The preference centre (`/p/<token>`) of the public app, from the links of a real send
to the outbox, and the footer that names why the reader gets the message."""

from __future__ import annotations

import email
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from citesmail.audience.consent import history
from citesmail.config import load_settings
from citesmail.db import ConsentEvent, Contact, Database, Send, open_database
from citesmail.states import ContactStatus
from citesmail.tokens import DEVELOPMENT_SECRET, make_token
from citesmail.web.public import create_public_app
from tests.conftest import REPLAY, run
from tests.web.test_public import path_of, sent_messages

BASE = "https://lettres.example.org"  # [unsubscribe] base_url of the test workspace


def make_audience(workspace: Path) -> None:
    """Three contacts on the public list `aura` (the segment's), the first also on the
    public `lettre` and the private `interne`, the second on nothing else."""
    addresses = ["p0@example.org", "p1@example.org", "p2@example.org"]
    (workspace / "c.csv").write_text("email\n" + "\n".join(addresses) + "\n",
                                     encoding="utf-8")
    for args in (["aura", "--public", "--title", "Partenaires AURA", "--description",
                  "Les rencontres des partenaires de la région"],
                 ["lettre", "--public", "--title", "Lettre mensuelle"],
                 ["interne", "--title", "Équipe interne"]):
        assert run("lists", "add", *args).exit_code == 0
    assert run("contacts", "import", "c.csv", "--list", "aura").exit_code == 0
    assert run("contacts", "edit", "p0@example.org", "--add-list", "lettre",
               "--add-list", "interne").exit_code == 0
    assert run("segments", "add", "partenaires-aura", "--list", "aura",
               "--list", "lettre").exit_code == 0


@dataclass
class Sent:
    client: TestClient
    db: Database
    messages: dict[str, email.message.EmailMessage]  # by address

    def url(self, address: str) -> str:
        """The preference page's path, from the footer of the message sent."""
        text = self.messages[address].get_body(("plain",)).get_content()
        return path_of(next(line for line in text.splitlines() if "/p/" in line))

    def contact(self, address: str) -> Contact:
        with self.db.session(write=False) as session:
            found = session.query(Contact).filter_by(email=address).one()
            session.expunge(found)
            return found

    def lists(self, address: str) -> list[str]:
        shown = run("contacts", "show", address).stdout
        line = next(line for line in shown.splitlines() if line.startswith("lists:"))
        return sorted(name.strip() for name in line.split(":", 1)[1].split(","))

    def events(self, address: str) -> list[tuple[str, str | None, str]]:
        with self.db.session(write=False) as session:
            return [(e.kind, e.list_name, e.source)
                    for e in history(session, self.contact(address).id)]


@pytest.fixture
def sent(workspace: Path) -> Iterator[Sent]:
    make_audience(workspace)
    assert run("send", REPLAY, "--yes").exit_code == 0
    messages = {m["To"].addresses[0].addr_spec: m for m in sent_messages(workspace)}
    settings = load_settings(workspace / "config.toml", environ={})
    db = open_database(settings.database_url)
    with TestClient(create_public_app(settings, db), base_url=BASE) as client:
        yield Sent(client, db, messages)
    db.close()


def test_footer_names_the_address_and_the_lists_through_which_they_are_in_the_segment(
        sent: Sent) -> None:
    first = sent.messages["p0@example.org"]
    html = unescape(first.get_body(("html",)).get_content())
    text = first.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert ("Vous recevez ce message à p0@example.org car vous êtes inscrit·e à\u00a0: "
            "Partenaires AURA, Lettre mensuelle.") in html
    assert "Équipe interne" not in html  # a private list is not the segment's, nor named
    assert "p0@example.org\ncar vous êtes inscrit·e à\u00a0:\nPartenaires AURA, " \
           "Lettre mensuelle." in text
    second = unescape(sent.messages["p1@example.org"].get_body(("html",)).get_content())
    assert "à p1@example.org car vous êtes inscrit·e à\u00a0: Partenaires AURA." in second
    assert ">Gérer mes abonnements</a>" in html and "Gérer mes abonnements\u00a0:" in text
    assert f'href="{BASE}/p/' in html
    # One-click List-Unsubscribe stays "everything": the /u/ link, never the page.
    assert f"<{BASE}/u/" in str(first["List-Unsubscribe"])
    assert "/p/" not in str(first["List-Unsubscribe"])


def test_web_view_footer_is_the_one_received(sent: Sent) -> None:
    message = sent.messages["p0@example.org"]
    web = sent.client.get(sent.url("p0@example.org").replace("/p/", "/v/"))
    assert web.status_code == 200
    assert web.text == message.get_body(("html",)).get_content().replace("\r\n", "\n")


def test_page_shows_public_lists_with_memberships_and_private_ones_read_only(
        sent: Sent) -> None:
    page = sent.client.get(sent.url("p0@example.org"))
    assert page.status_code == 200
    body = unescape(page.text)
    assert '<html lang="fr">' in body and "Mes abonnements" in body
    assert "p0@example.org" in body
    assert 'name="list" value="aura" checked' in body
    assert 'name="list" value="lettre" checked' in body
    assert "Les rencontres des partenaires de la région" in body
    assert 'value="interne"' not in body and "<li>Équipe interne</li>" in body
    assert "Se désabonner de tout" in body
    assert page.headers["referrer-policy"] == "same-origin"
    other = unescape(sent.client.get(sent.url("p1@example.org")).text)
    assert 'name="list" value="lettre">' in other  # offered, not ticked
    assert "interne" not in other and "Équipe interne" not in other  # never offered


def test_saving_changes_memberships_and_records_events(sent: Sent) -> None:
    url = sent.url("p1@example.org")
    token = url.rsplit("/", 1)[1]
    saved = sent.client.post(url, data={"token": token, "list": ["lettre"],
                                        "action": "save"})
    assert saved.status_code == 200 and "C'est enregistré." in unescape(saved.text)
    assert 'value="lettre" checked' in saved.text and 'value="aura">' in saved.text
    assert sent.lists("p1@example.org") == ["lettre"]
    events = sent.events("p1@example.org")
    assert ("list_subscribe", "lettre", "serve: preference page") in events
    assert ("list_unsubscribe", "aura", "serve: preference page") in events
    assert sent.contact("p1@example.org").status == ContactStatus.ACTIVE
    again = sent.client.post(url, data={"token": token, "list": ["lettre"]})
    assert again.status_code == 200 and sent.events("p1@example.org") == events
    shown = run("contacts", "show", "p1@example.org").stdout
    assert "Lettre mensuelle" in shown  # the text shown beside the box, kept as consent


def test_private_lists_stay_when_public_ones_are_left(sent: Sent) -> None:
    url = sent.url("p0@example.org")
    token = url.rsplit("/", 1)[1]
    assert sent.client.post(url, data={"token": token}).status_code == 200
    assert sent.lists("p0@example.org") == ["interne"]


def test_a_private_or_unknown_list_is_refused(sent: Sent) -> None:
    url = sent.url("p1@example.org")
    token = url.rsplit("/", 1)[1]
    for name in ("interne", "nope"):
        refused = sent.client.post(url, data={"token": token, "list": ["aura", name]})
        assert refused.status_code == 400 and "Rien n'a changé" in unescape(refused.text)
    assert sent.lists("p1@example.org") == ["aura"]


def test_everything_is_the_one_click_unsubscribe(sent: Sent) -> None:
    url = sent.url("p2@example.org")
    token = url.rsplit("/", 1)[1]
    done = sent.client.post(url, data={"token": token, "action": "everything"})
    assert done.status_code == 200 and "C'est fait" in unescape(done.text)
    assert sent.contact("p2@example.org").status == ContactStatus.UNSUBSCRIBED
    assert ("unsubscribe", None, "serve: unsubscribe link") in sent.events("p2@example.org")


def test_a_contact_who_left_sees_the_page_but_cannot_join(sent: Sent) -> None:
    assert run("contacts", "edit", "p2@example.org", "--remove-list", "aura").exit_code == 0
    url = sent.url("p2@example.org")
    token = url.rsplit("/", 1)[1]
    sent.client.post(url, data={"token": token, "action": "everything"})
    before = sent.events("p2@example.org")
    page = unescape(sent.client.get(url).text)
    assert "Nous n'envoyons plus de messages à p2@example.org" in page
    assert 'value="aura" disabled' in page and "Se désabonner de tout" not in page
    refused = sent.client.post(url, data={"token": token, "list": ["aura"]})
    assert refused.status_code == 409 and "ne peut pas être réinscrite" in unescape(
        refused.text)
    assert sent.lists("p2@example.org") == ["(none)"]
    assert sent.events("p2@example.org") == before
    assert sent.contact("p2@example.org").status == ContactStatus.UNSUBSCRIBED


def test_forged_token_400_unknown_contact_404(sent: Sent) -> None:
    url = sent.url("p0@example.org")
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    forged = sent.client.get(tampered)
    assert forged.status_code == 400 and "p0@example.org" not in forged.text
    posted = sent.client.post(tampered, data={"token": tampered.rsplit("/", 1)[1]})
    assert posted.status_code == 400
    unknown = make_token(DEVELOPMENT_SECRET, 999, REPLAY)
    assert sent.client.get(f"/p/{unknown}").status_code == 404
    assert sent.client.post(f"/p/{unknown}", data={"token": unknown}).status_code == 404
    assert sent.lists("p0@example.org") == ["aura", "interne", "lettre"]


def test_cross_site_posts_and_forms_without_the_token_change_nothing(sent: Sent) -> None:
    url = sent.url("p0@example.org")
    token = url.rsplit("/", 1)[1]
    for headers in ({"origin": "https://evil.example"}, {"origin": "null"},
                    {"referer": "https://evil.example/page"}):
        refused = sent.client.post(url, data={"token": token}, headers=headers)
        assert refused.status_code == 403, headers
    missing = sent.client.post(url, data={"list": []})
    assert missing.status_code == 403
    other = sent.url("p1@example.org").rsplit("/", 1)[1]
    assert sent.client.post(url, data={"token": other}).status_code == 403
    assert sent.lists("p0@example.org") == ["aura", "interne", "lettre"]
    ours = sent.client.post(url, data={"token": token, "list": ["aura"]},
                            headers={"origin": BASE})
    assert ours.status_code == 200
    assert sent.lists("p0@example.org") == ["aura", "interne"]


def test_page_in_english_for_an_english_campaign(sent: Sent) -> None:
    # The language is the message's: an English send's page speaks English.
    with sent.db.session() as session:
        send = session.query(Send).one()
        send.html = send.html.replace('<html lang="fr"', '<html lang="en"', 1)
        send.source_hash = "changed"  # a new version of the send: read again
    page = unescape(sent.client.get(sent.url("p0@example.org")).text)
    assert '<html lang="en">' in page and "Save my choices" in page
    assert "Unsubscribe from everything" in page


def test_a_locked_database_answers_503_and_saves_nothing(workspace: Path, sent: Sent) -> None:
    """A choice is answered 2xx only once committed: while an import holds SQLite's
    write lock past the busy timeout, the answer is 503 with Retry-After."""
    settings = load_settings(workspace / "config.toml", environ={})
    quick = open_database(settings.database_url, busy_timeout=timedelta(milliseconds=50))
    holder = sqlite3.connect(str(quick.engine.url.database), isolation_level=None)
    url = sent.url("p1@example.org")
    try:
        with TestClient(create_public_app(settings, quick), base_url=BASE) as client:
            holder.execute("BEGIN IMMEDIATE")
            busy = client.post(url, data={"token": url.rsplit("/", 1)[1], "list": ["lettre"]})
            holder.execute("ROLLBACK")
    finally:
        holder.close()
        quick.close()
    assert busy.status_code == 503 and busy.headers["retry-after"] == "60"
    assert "Réessayez dans une minute" in unescape(busy.text)
    assert sent.lists("p1@example.org") == ["aura"]


def test_leaving_through_the_page_names_the_campaign_of_its_link(sent: Sent) -> None:
    for address, fields in (("p1@example.org", {"list": ["lettre"]}),
                            ("p2@example.org", {"action": "everything"})):
        url = sent.url(address)
        answer = sent.client.post(url, data={"token": url.rsplit("/", 1)[1], **fields})
        assert answer.status_code == 200
    with sent.db.session(write=False) as session:
        found = set(session.execute(select(ConsentEvent.kind, ConsentEvent.campaign).where(
            ConsentEvent.kind.in_(["list_unsubscribe", "unsubscribe"]))))
    assert found == {("list_unsubscribe", REPLAY), ("unsubscribe", REPLAY)}
