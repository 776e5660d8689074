"""The measurement box of the public app: on the sign-up form (given at confirmation)
and on the preference page (given or withdrawn at once), only when [tracking] measures
someone's own clicks or opens."""

from __future__ import annotations

from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from citesmail.audience.consent import history
from citesmail.config import load_settings
from citesmail.db import ClickEvent, Contact, Database, OpenEvent, open_database, utcnow
from citesmail.web.public import create_public_app
from tests.conftest import REPLAY, run
from tests.web.test_preferences import BASE as PREFS_BASE
from tests.web.test_preferences import Sent, make_audience
from tests.web.test_public import sent_messages
from tests.web.test_signup import FORM, confirm_path, make_app, outbox, post, send_queue

INDIVIDUAL = {"CITESMAIL_TRACKING_CLICKS": "individual"}


def measurement_events(db: Database, address: str) -> list[tuple[str, str, str | None]]:
    with db.session(write=False) as session:
        contact_id = session.scalar(select(Contact.id).where(Contact.email == address))
        assert contact_id is not None
        return [(e.kind, e.source, e.text) for e in history(session, contact_id)
                if e.kind.startswith("measurement")]


def consents(db: Database, address: str) -> bool | None:
    with db.session(write=False) as session:
        return session.scalar(select(Contact.measurement_consent)
                              .where(Contact.email == address))


def test_the_box_is_absent_unless_someone_is_measured(workspace: Path) -> None:
    client, db, _ = make_app(workspace)  # the example config: clicks "aggregate"
    page = client.get("/s/actu")
    assert page.status_code == 200 and 'name="measurement"' not in page.text
    # A box posted anyway is not taken.
    assert post(client, measurement="yes").status_code == 200  # type: ignore[attr-defined]
    assert measurement_events(db, FORM["email"]) == []
    db.close()


@pytest.mark.parametrize(("environ", "words"), [
    ({"CITESMAIL_TRACKING_OPENS": "individual", "CITESMAIL_TRACKING_CLICKS": "off"},
     "enregistre, à mon nom, l'ouverture de ses messages. Ces données sont effacées "
     "après 395 jours"),
    ({**INDIVIDUAL, "CITESMAIL_CAMPAIGNS_LANG": "en", "CITESMAIL_TRACKING_RETENTION": "30d"},
     "records, under my name, the links I click in its messages. This data is deleted "
     "after 30 days"),
    ({**INDIVIDUAL, "CITESMAIL_TRACKING_CONSENT_TEXT": "Mesure de mes clics, 1 an."},
     "Mesure de mes clics, 1 an."),
])
def test_the_box_is_unticked_and_says_what_and_how_long(
        workspace: Path, environ: dict[str, str], words: str) -> None:
    client, db, _ = make_app(workspace, **environ)
    text = unescape(client.get("/s/actu").text)
    assert '<input type="checkbox" id="measurement" name="measurement" value="yes">' in text
    assert words in text and '<label for="measurement">' in text
    db.close()


def test_ticked_at_sign_up_given_at_confirmation_with_its_text(workspace: Path) -> None:
    client, db, settings = make_app(workspace, **INDIVIDUAL)
    shown = unescape(client.get("/s/actu").text)
    assert post(client, measurement="yes").status_code == 200  # type: ignore[attr-defined]
    assert post(client, email="dom@example.org").status_code == 200  # type: ignore[attr-defined]
    assert consents(db, FORM["email"]) is False  # pending: nothing given yet
    [(kind, source, text)] = measurement_events(db, FORM["email"])
    assert kind == "measurement_asked" and source.endswith("/s/actu") and text in shown
    send_queue(db, settings)
    paths = {message["To"]: confirm_path(message) for message in outbox(workspace)}
    for path in paths.values():
        assert client.post(path).status_code == 200
    assert consents(db, FORM["email"]) is True
    assert measurement_events(db, FORM["email"])[1:] == [
        ("measurement_given", "confirmation link", text)]
    assert consents(db, "dom@example.org") is False
    assert measurement_events(db, "dom@example.org") == []
    db.close()


@pytest.fixture
def sent(workspace: Path) -> Iterator[Sent]:
    make_audience(workspace)
    assert run("send", REPLAY, "--yes").exit_code == 0
    messages = {m["To"].addresses[0].addr_spec: m for m in sent_messages(workspace)}
    settings = load_settings(workspace / "config.toml", environ=INDIVIDUAL)
    db = open_database(settings.database_url)
    with TestClient(create_public_app(settings, db), base_url=PREFS_BASE) as client:
        yield Sent(client, db, messages)
    db.close()


def recorded(db: Database, contact_id: int) -> tuple[int, int]:
    with db.session(write=False) as session:
        return tuple(session.scalar(select(func.count()).select_from(model).where(  # type: ignore[return-value]
            model.contact_id == contact_id)) for model in (ClickEvent, OpenEvent))


def test_preference_page_gives_then_withdraws_and_deletes_the_events(sent: Sent) -> None:
    url = sent.url("p1@example.org")
    token = url.rsplit("/", 1)[1]
    page = unescape(sent.client.get(url).text)
    assert "Mesure d'audience" in page and 'name="measurement" value="yes"' in page
    assert 'value="yes" aria-describedby="measurement-stop">' in page  # not ticked
    assert "vos clics et ouvertures déjà enregistrés sont effacés aussitôt" in page
    keep = {"token": token, "list": ["aura"], "measurement_shown": "1", "action": "save"}
    given = sent.client.post(url, data={**keep, "measurement": "yes"})
    assert given.status_code == 200 and "C'est enregistré." in unescape(given.text)
    assert 'aria-describedby="measurement-stop" checked' in given.text
    contact = sent.contact("p1@example.org")
    assert contact.measurement_consent is True
    text = next(line for line in page.splitlines() if "enregistre, à mon nom" in line)
    [(kind, source, said)] = measurement_events(sent.db, "p1@example.org")
    assert (kind, source) == ("measurement_given", "serve: preference page")
    assert said is not None and said in text
    with sent.db.session() as session:
        session.add_all([ClickEvent(contact_id=contact.id, campaign="c", number=1,
                                    automated=False, at=utcnow()),
                         OpenEvent(contact_id=contact.id, campaign="c", at=utcnow())])
    assert recorded(sent.db, contact.id) == (1, 1)
    # A page shown before the box was offered (no measurement_shown) withdraws nothing.
    sent.client.post(url, data={"token": token, "list": ["aura"], "action": "save"})
    assert sent.contact("p1@example.org").measurement_consent is True
    withdrawn = sent.client.post(url, data=keep)
    assert withdrawn.status_code == 200
    assert sent.contact("p1@example.org").measurement_consent is False
    assert recorded(sent.db, contact.id) == (0, 0)
    assert [kind for kind, _, _ in measurement_events(sent.db, "p1@example.org")] == [
        "measurement_given", "measurement_withdrawn"]
    assert sent.lists("p1@example.org") == ["aura"]  # the lists untouched

