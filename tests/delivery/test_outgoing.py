"""The confirmation queue against a real SMTP server: a row is marked sent only once the
server took the message; a relay that is down delays it, never loses it."""

from __future__ import annotations

from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import select

from citesmail.audience.signup import queue
from citesmail.config import Settings, load_settings
from citesmail.db import Contact, Database, MailingList, OutgoingMail, utcnow
from citesmail.delivery.outgoing import FIRST_RETRY, confirm_url, drain, retry_delay
from citesmail.delivery.transports import make_transport
from citesmail.states import OutgoingKind, OutgoingState
from tests.cli.test_delivery_commands import smtp_env
from tests.conftest import ROOT
from tests.smtp_server import Handler, free_port


def settings_for(tmp_path: Path, port: int) -> Settings:
    settings = load_settings(ROOT / "config.example.toml", environ=smtp_env(port))
    return settings.model_copy(update={"workspace": tmp_path})


def queued_row(db: Database, address: str = "camille@example.org") -> int:
    now = utcnow()
    with db.session() as session:
        contact = Contact(email=address, email_key=address, domain="example.org",
                          attributes={}, status="pending")
        chosen = MailingList(name="actu", title="Actualités", public=True)
        session.add_all([contact, chosen])
        session.flush()
        return queue(session, contact.id, OutgoingKind.SIGNUP, [chosen.id], "fr", now).id


def row(db: Database, number: int) -> OutgoingMail:
    with db.session(write=False) as session:
        found = session.get(OutgoingMail, number)
        assert found is not None
        return found


def test_relay_down_then_up(db: Database, tmp_path: Path) -> None:
    port = free_port()
    settings = settings_for(tmp_path, port)
    number = queued_row(db)
    lines: list[str] = []
    clock = [utcnow()]

    def now() -> datetime:
        return clock[0]

    down = drain(db, settings, lambda: make_transport(settings), lines.append, now)
    assert (down.sent, down.deferred) == (0, 1)
    kept = row(db, number)
    assert kept.state == OutgoingState.QUEUED and kept.attempts == 1 and kept.last_error
    assert kept.next_attempt_at == clock[0] + FIRST_RETRY
    assert "deferred (try 1)" in lines[0]
    # Not due yet: nothing is tried.
    assert drain(db, settings, lambda: make_transport(settings), lines.append, now).deferred == 0
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock[0] += FIRST_RETRY
        up = drain(db, settings, lambda: make_transport(settings), lines.append, now)
    finally:
        controller.stop()
    assert up.sent == 1 and handler.received["camille@example.org"] == 1
    sent = row(db, number)
    assert sent.state == OutgoingState.SENT and sent.attempts == 2 and sent.sent_at
    message = message_from_bytes(handler.messages[0], policy=policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Actualités" in text and "/confirm/" in text
    assert message["Auto-Submitted"] == "auto-generated" and message["Precedence"] is None


def test_retry_delays_grow_to_a_limit() -> None:
    delays = [retry_delay(n) for n in range(1, 30)]
    assert delays[0] == FIRST_RETRY and delays == sorted(delays)
    assert delays[-1] == timedelta(minutes=10)


def test_a_refused_address_is_not_tried_again(db: Database, tmp_path: Path) -> None:
    port = free_port()
    settings = settings_for(tmp_path, port)
    number = queued_row(db, "nobody@example.org")
    handler = Handler()
    handler.at_rcpt["nobody@example.org"] = [550]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        done = drain(db, settings, lambda: make_transport(settings), lambda _: None)
    finally:
        controller.stop()
    assert done.failed == 1 and row(db, number).state == OutgoingState.FAILED


def test_the_link_expires_after_confirm_days(db: Database, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, free_port())
    number = queued_row(db)
    with db.session(write=False) as session:
        due = session.scalar(select(OutgoingMail).where(OutgoingMail.id == number))
    assert due is not None
    from citesmail.delivery.outgoing import Due
    from citesmail.tokens import read_confirm_token

    url = confirm_url(settings, Due(due.id, due.contact_id, "x", "pending", due.lists, [],
                                    "fr", 1, due.created_at))
    token = url.rsplit("/", 1)[1]
    days = settings.subscribe.confirm_days
    end = int((due.created_at + timedelta(days=days)).timestamp())
    assert read_confirm_token(settings.secret or "", token, end) == (due.contact_id, due.lists)
