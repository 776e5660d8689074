"""The sign-up form and the confirmation link, in-process: every bad input refused with
nothing stored, the same answer for every address, and the confirmation by POST only."""

from __future__ import annotations

import email
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from citesmail.config import Settings, load_settings
from citesmail.db import ConsentEvent, Contact, Database, OutgoingMail, open_database, utcnow
from citesmail.delivery.outgoing import drain
from citesmail.delivery.transports import OutboxTransport
from citesmail.tokens import DEVELOPMENT_SECRET, make_confirm_token
from citesmail.web.public import create_public_app
from tests.conftest import run

FORM = {"email": "camille@example.org", "first_name": "Camille", "last_name": "Martin",
        "organization": "Ville d'Exemple", "lists": "actu", "consent": "yes", "website": ""}
BASE = "http://127.0.0.1:8080"


def setup_lists() -> None:
    for args in (["actu", "--public", "--title", "Actualités du réseau"],
                 ["emploi", "--public", "--title", "Emploi et insertion"],
                 ["interne", "--title", "Équipe"]):
        assert run("lists", "add", *args).exit_code == 0


def make_app(workspace: Path, **environ: str) -> tuple[TestClient, Database, Settings]:
    setup_lists()
    settings = load_settings(workspace / "config.toml", environ={
        "CITESMAIL_UNSUBSCRIBE_BASE_URL": BASE, **environ})
    db = open_database(settings.database_url)
    # No lifespan: the sender thread stays off, the tests drain the queue themselves.
    return TestClient(create_public_app(settings, db)), db, settings


@pytest.fixture
def app(workspace: Path) -> tuple[TestClient, Database, Settings]:
    client, db, settings = make_app(workspace)
    yield client, db, settings
    db.close()


def counts(db: Database) -> tuple[int, int, int]:
    with db.session(write=False) as session:
        return tuple(session.scalar(select(func.count()).select_from(model))  # type: ignore[return-value]
                     for model in (Contact, ConsentEvent, OutgoingMail))


def status_of(db: Database, address: str) -> str | None:
    with db.session(write=False) as session:
        return session.scalar(select(Contact.status).where(Contact.email == address))


def post(client: TestClient, path: str = "/s/actu", **changes: str | list[str]) -> object:
    form = {**FORM, **changes}
    return client.post(path, data=form, headers={"origin": BASE})


def outbox(workspace: Path) -> list[EmailMessage]:
    folder = workspace / "outbox" / "new"
    if not folder.exists():
        return []
    return [email.message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for path in sorted(folder.iterdir())]


def send_queue(db: Database, settings: Settings) -> None:
    drain(db, settings, lambda: OutboxTransport(settings.outbox_dir), lambda line: None)


def confirm_path(message: EmailMessage) -> str:
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    url = next(word for word in text.split() if "/confirm/" in word)
    assert url.startswith(f"{BASE}/confirm/")
    return url.removeprefix(BASE)


def test_the_form_offers_the_public_lists(app: tuple[TestClient, Database, Settings]) -> None:
    client, _, settings = app
    page = client.get("/s/emploi")
    assert page.status_code == 200 and '<html lang="fr">' in page.text
    text = unescape(page.text)
    assert 'value="emploi" checked' in text and 'value="actu">' in text
    assert "interne" not in text  # private
    assert settings.subscribe.consent_text in text
    assert 'name="website"' in text and "<div hidden>" in text  # the honeypot
    for name in ("email", "first_name", "last_name", "organization", "consent"):
        assert f'<label for="{name}">' in text
    for missing in ("/s/interne", "/s/nope"):
        assert client.get(missing).status_code == 404
        refused = post(client, missing)
        assert refused.status_code == 404  # type: ignore[attr-defined]


def test_sign_up_then_confirm(workspace: Path,
                              app: tuple[TestClient, Database, Settings]) -> None:
    client, db, settings = app
    answer = post(client, lists=["actu", "emploi"])
    assert answer.status_code == 200  # type: ignore[attr-defined]
    assert "Vérifiez votre boîte" in unescape(answer.text)  # type: ignore[attr-defined]
    assert status_of(db, FORM["email"]) == "pending"
    assert outbox(workspace) == []  # never sent inside the request
    shown = run("contacts", "show", FORM["email"]).stdout
    assert "form_signup" in shown and f"form {BASE} /s/actu" in shown
    send_queue(db, settings)
    [message] = outbox(workspace)
    assert message["To"] == FORM["email"] and "Confirmez" in message["Subject"]
    assert message["List-Unsubscribe"] is None
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Actualités du réseau" in html and "Emploi et insertion" in html
    path = confirm_path(message)
    page = client.get(path)  # what a mail scanner does: nothing
    assert page.status_code == 200 and "Confirmer mon inscription" in page.text
    assert status_of(db, FORM["email"]) == "pending"
    done = client.post(path)
    assert done.status_code == 200 and "confirmée" in unescape(done.text)
    assert status_of(db, FORM["email"]) == "active"
    shown = run("contacts", "show", FORM["email"]).stdout
    assert "actu" in shown and "emploi" in shown and shown.count(" confirmation [") == 2
    before = counts(db)
    again = client.post(path)  # harmless
    assert again.status_code == 200 and counts(db) == before


def test_every_address_gets_the_same_answer(
        workspace: Path, app: tuple[TestClient, Database, Settings]) -> None:
    client, db, settings = app
    (workspace / "c.csv").write_text("email\nactive@example.org\nleft@example.org\n"
                                     "bounced@example.org\n", encoding="utf-8")
    assert run("contacts", "import", "c.csv", "--list", "actu").exit_code == 0
    assert run("contacts", "unsubscribe", "left@example.org").exit_code == 0
    with db.session() as session:
        bounced = session.scalar(select(Contact).where(Contact.email == "bounced@example.org"))
        assert bounced is not None
        bounced.status = "bounced"
    answers = {}
    for address in ("new@example.org", "active@example.org", "left@example.org",
                    "bounced@example.org"):
        response = post(client, email=address)
        answers[address] = response.text.replace(address, "ADDRESS")  # type: ignore[attr-defined]
        assert response.status_code == 200  # type: ignore[attr-defined]
    assert len(set(answers.values())) == 1
    with db.session(write=False) as session:
        queued = set(session.scalars(select(Contact.email).join(
            OutgoingMail, OutgoingMail.contact_id == Contact.id)))
    assert queued == {"new@example.org", "active@example.org", "left@example.org"}
    assert status_of(db, "left@example.org") == "unsubscribed"  # until confirmed
    assert status_of(db, "bounced@example.org") == "bounced"
    send_queue(db, settings)
    messages = {m["To"]: m for m in outbox(workspace)}
    assert set(messages) == queued
    assert client.post(confirm_path(messages["left@example.org"])).status_code == 200
    assert status_of(db, "left@example.org") == "active"
    assert "resubscription" in run("contacts", "show", "left@example.org").stdout


def test_one_confirmation_per_address_per_ten_minutes(
        app: tuple[TestClient, Database, Settings]) -> None:
    client, db, _ = app
    first = post(client)
    before = counts(db)
    second = post(client)
    assert second.status_code == 200  # type: ignore[attr-defined]
    assert second.text == first.text  # type: ignore[attr-defined]
    assert counts(db) == before  # nothing queued, nothing recorded
    with db.session() as session:  # ten minutes later
        for row in session.scalars(select(OutgoingMail)):
            row.created_at = utcnow() - timedelta(minutes=11)
    assert post(client).status_code == 200  # type: ignore[attr-defined]
    assert counts(db)[2] == 2


@pytest.mark.parametrize(("changes", "status", "said"), [
    ({"website": "http://spam.example"}, 400, "un champ qui doit rester vide"),
    ({"first_name": "Camille\r\nBcc: x@example.org"}, 400, "« Prénom » contient un retour"),
    ({"organization": "<a href='x'>ici</a>"}, 400, "« Structure » contient une balise"),
    ({"last_name": "x" * 5001}, 400, "« Nom » est trop long"),
    ({"consent": ""}, 400, "cochez la case de consentement"),
    ({"email": "pas-une-adresse"}, 400, "« Adresse e-mail » n'est pas valide"),
    ({"lists": "interne"}, 400, "« Listes » n'est pas valide"),
    ({"lists": []}, 400, "« Listes » n'est pas valide"),
])
def test_bad_input_is_refused_and_nothing_stored(
        app: tuple[TestClient, Database, Settings], changes: dict[str, str], status: int,
        said: str) -> None:
    client, db, _ = app
    before = counts(db)
    response = post(client, **changes)
    assert response.status_code == status  # type: ignore[attr-defined]
    assert said in unescape(response.text)  # type: ignore[attr-defined]
    assert counts(db) == before


def test_origins(workspace: Path) -> None:
    client, db, _ = make_app(workspace, CITESMAIL_SUBSCRIBE_ALLOWED_ORIGINS=
                             '["https://www.centre.example"]')
    try:
        foreign = client.post("/s/actu", data=FORM, headers={"origin": "https://evil.example"})
        assert foreign.status_code == 403 and counts(db) == (0, 0, 0)
        by_referer = client.post("/s/actu", data=FORM,
                                 headers={"referer": "https://evil.example/page?x=1"})
        assert by_referer.status_code == 403 and counts(db) == (0, 0, 0)
        allowed = client.post("/s/actu", data=FORM,
                              headers={"origin": "https://www.centre.example"})
        assert allowed.status_code == 200 and counts(db)[2] == 1
        assert "form https://www.centre.example /s/actu" in run(
            "contacts", "show", FORM["email"]).stdout
    finally:
        db.close()


def test_rate_per_ip(workspace: Path) -> None:
    client, db, _ = make_app(workspace, CITESMAIL_SUBSCRIBE_RATE_PER_IP="2")
    try:
        for number in range(2):
            assert post(client, email=f"p{number}@example.org").status_code == 200  # type: ignore[attr-defined]
        before = counts(db)
        third = post(client, email="p2@example.org")
        assert third.status_code == 429 and "Trop d'inscriptions" in unescape(third.text)  # type: ignore[attr-defined]
        assert counts(db) == before
    finally:
        db.close()


def test_forged_and_expired_links(app: tuple[TestClient, Database, Settings]) -> None:
    client, db, _ = app
    post(client)
    with db.session(write=False) as session:
        contact_id = session.scalar(select(Contact.id))
    assert contact_id is not None
    past = int((utcnow() - timedelta(seconds=1)).timestamp())
    expired = make_confirm_token(DEVELOPMENT_SECRET, contact_id, [1], past)
    for method in (client.get, client.post):
        answer = method(f"/confirm/{expired}")
        assert answer.status_code == 410 and "expiré" in unescape(answer.text)
    future = int((utcnow() + timedelta(days=1)).timestamp())
    forged = make_confirm_token("another-secret-of-more-than-32-bytes!", contact_id, [1],
                                future)
    for token in (forged, "nonsense", forged[:-2]):
        assert client.post(f"/confirm/{token}").status_code == 400
    assert status_of(db, FORM["email"]) == "pending"
