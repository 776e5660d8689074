"""Sending through a real SMTP server (aiosmtpd on 127.0.0.1): every state of the log."""

from __future__ import annotations

import email
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from citesmail.audience.contacts import unsubscribe
from citesmail.audience.importer import import_contacts
from citesmail.audience.lists import add_list
from citesmail.audience.recipients import wire_address
from citesmail.audience.segments import Definition, add_segment
from citesmail.campaigns import load_campaign
from citesmail.config import Settings, load_settings
from citesmail.db import Contact, Database, Delivery, Send
from citesmail.delivery import (
    Prepared,
    SendBusy,
    SendPaused,
    SendRun,
    counts,
    prepare_send,
    requeue_unknown,
    start_scheduled,
    summary,
)
from citesmail.delivery.journal import Journal
from citesmail.delivery.run import PAUSE_AFTER
from citesmail.delivery.transports import Outcome, make_transport
from citesmail.errors import CitesmailError
from citesmail.intake import append, intake_path
from citesmail.render import render_campaign
from citesmail.states import DeliveryState
from citesmail.tokens import read_token
from tests.conftest import EXAMPLES, REPLAY, ROOT, SECRET
from tests.smtp_server import SmtpServer, free_port


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as running:
        yield running


def settings_for(port: int, **extra: str) -> Settings:
    return load_settings(ROOT / "config.example.toml", environ={
        "CITESMAIL_DELIVERY_TRANSPORT": "smtp", "CITESMAIL_SMTP_HOST": "127.0.0.1",
        "CITESMAIL_SMTP_PORT": str(port), "CITESMAIL_SMTP_SECURITY": "none",
        "CITESMAIL_SECRET": SECRET, "CITESMAIL_DELIVERY_RETRY_DELAYS": "[1, 1]",
        "CITESMAIL_DELIVERY_CONNECTIONS": "2", **extra})


def audience(db: Database, tmp_path: Path, n: int) -> list[str]:
    with db.session() as session:
        add_list(session, "l")
    addresses = [f"r{i}@example.org" for i in range(n)]
    path = tmp_path / "c.csv"
    path.write_text("email;prénom\n" + "".join(f"{a};Prénom{i}\n"
                                              for i, a in enumerate(addresses)),
                    encoding="utf-8")
    import_contacts(db, path, list_name="l")
    return addresses


def start(db: Database, cfg: Settings) -> int:
    campaign = load_campaign(EXAMPLES / f"{REPLAY}.md", default_lang="fr", tz=cfg.tz)
    rendered = render_campaign(campaign, cfg)
    return prepare_send(db, rendered, "s", Definition(lists=["l"]), "hash").send_id


def run(db: Database, cfg: Settings, send_id: int) -> dict[str, int]:
    result = SendRun(db, send_id, cfg, lambda: make_transport(cfg)).run()
    return {state: n for state, n in result.counts.items() if n}


def rows(db: Database) -> dict[str, Delivery]:
    with db.session(write=False) as session:
        return {d.email: d for d in session.scalars(select(Delivery))}


def test_every_recipient_receives_one_complete_message(db: Database, tmp_path: Path,
                                                      server: SmtpServer) -> None:
    addresses = audience(db, tmp_path, 12)
    cfg = settings_for(server.port)
    assert run(db, cfg, start(db, cfg)) == {"sent": 12}
    assert server.handler.received == dict.fromkeys(addresses, 1)
    message = email.message_from_bytes(server.handler.messages[0], policy=policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["To"].addresses[0].addr_spec in addresses
    body = message.get_body(("plain",)).get_content()
    assert "Bonjour Prénom" in body
    assert run(db, cfg, start(db, cfg)) == {"sent": 12}  # a finished campaign sends nothing
    assert sum(server.handler.received.values()) == 12


def test_permanent_refusal_fails_and_bounces_the_contact(db: Database, tmp_path: Path,
                                                        server: SmtpServer) -> None:
    addresses = audience(db, tmp_path, 3)
    server.handler.at_rcpt[addresses[1]] = [550]
    cfg = settings_for(server.port)
    assert run(db, cfg, start(db, cfg)) == {"sent": 2, "failed": 1}
    found = rows(db)[addresses[1]]
    assert (found.state, found.last_code) == ("failed", 550)
    with db.session(write=False) as session:
        status = session.scalar(select(Contact.status).where(Contact.email == addresses[1]))
    assert status == "bounced"


@pytest.mark.parametrize(("where", "code"), [("rcpt", 451), ("rcpt", 452), ("rcpt", 421),
                                             ("data", 451), ("data", 552)])
def test_temporary_failures_are_retried(db: Database, tmp_path: Path, server: SmtpServer,
                                        where: str, code: int) -> None:
    addresses = audience(db, tmp_path, 2)
    script = server.handler.at_rcpt if where == "rcpt" else server.handler.at_data
    script[addresses[0]] = [code]
    cfg = settings_for(server.port)
    assert run(db, cfg, start(db, cfg)) == {"sent": 2}
    found = rows(db)[addresses[0]]
    assert found.attempts == 2 and found.state == "sent"
    assert server.handler.received[addresses[0]] == 1


def test_retries_used_up_fail(db: Database, tmp_path: Path, server: SmtpServer) -> None:
    addresses = audience(db, tmp_path, 1)
    server.handler.at_rcpt[addresses[0]] = [451, 451, 451]
    cfg = settings_for(server.port)
    assert run(db, cfg, start(db, cfg)) == {"failed": 1}
    assert rows(db)[addresses[0]].attempts == 3


def test_connection_dropped_before_the_message_is_deferred_then_sent(
        db: Database, tmp_path: Path, server: SmtpServer) -> None:
    addresses = audience(db, tmp_path, 4)
    server.handler.drop_at_rcpt[addresses[2]] = 2  # the reconnection is dropped too
    cfg = settings_for(server.port)
    assert run(db, cfg, start(db, cfg)) == {"sent": 4}
    found = rows(db)[addresses[2]]
    assert found.attempts == 2 and found.state == "sent"  # deferred once, then sent
    assert server.handler.received == dict.fromkeys(addresses, 1)


def test_connection_dropped_after_the_message_is_unknown_not_resent(
        db: Database, tmp_path: Path, server: SmtpServer) -> None:
    addresses = audience(db, tmp_path, 3)
    server.handler.drop_after_data[addresses[1]] = 1  # the server has it, says nothing
    cfg = settings_for(server.port)
    assert run(db, cfg, start(db, cfg)) == {"sent": 2, "unknown": 1}
    assert server.handler.received == dict.fromkeys(addresses, 1)  # nobody twice


def test_resend_unknown(db: Database, tmp_path: Path, server: SmtpServer) -> None:
    from citesmail.delivery import requeue_unknown

    addresses = audience(db, tmp_path, 2)
    server.handler.drop_after_data[addresses[0]] = 1
    cfg = settings_for(server.port)
    send_id = start(db, cfg)
    assert run(db, cfg, send_id) == {"sent": 1, "unknown": 1}
    assert requeue_unknown(db, send_id) == 1
    assert run(db, cfg, send_id) == {"sent": 2}
    assert server.handler.received[addresses[0]] == 2  # asked for: sent again


def test_a_slow_answer_after_the_message_is_unknown(db: Database, tmp_path: Path,
                                                    server: SmtpServer) -> None:
    addresses = audience(db, tmp_path, 1)
    server.handler.delay = 1.5
    cfg = settings_for(server.port, CITESMAIL_SMTP_TIMEOUT='"1s"')
    assert run(db, cfg, start(db, cfg)) == {"unknown": 1}
    deadline = time.monotonic() + 5  # the slow server records it after its delay
    while not server.handler.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.handler.received[addresses[0]] == 1


def test_sender_refused_pauses_rather_than_failing_everyone(db: Database, tmp_path: Path,
                                                           server: SmtpServer) -> None:
    audience(db, tmp_path, PAUSE_AFTER + 2)
    server.handler.refuse_sender = True
    cfg = settings_for(server.port)
    send_id = start(db, cfg)
    with pytest.raises(SendPaused, match="sender refused"):
        run(db, cfg, send_id)
    with db.session(write=False) as session:
        found = counts(session, send_id)
    assert found["failed"] == 0 and found["sending"] == 0


def test_an_address_that_needs_smtputf8_fails_alone(db: Database, tmp_path: Path,
                                                    server: SmtpServer) -> None:
    with db.session() as session:
        add_list(session, "l")
    path = tmp_path / "c.csv"
    path.write_text("email\nzoé@bücher.de\nb@example.org\n", encoding="utf-8")
    import_contacts(db, path, list_name="l")
    cfg = settings_for(server.port)
    assert run(db, cfg, start(db, cfg)) == {"sent": 1, "failed": 1}
    assert "SMTPUTF8" in (rows(db)["zoé@xn--bcher-kva.de"].last_error or "")


def test_the_snapshot_holds_each_recipient_as_sent(db: Database, tmp_path: Path) -> None:
    """The snapshot is one INSERT ... SELECT: the database computes the wire address
    (local part as written @ ASCII domain), blanks for missing names, in contact order."""
    with db.session() as session:
        add_list(session, "l")
        add_list(session, "other")
    path = tmp_path / "c.csv"
    path.write_text("email;first_name;last_name;organization\n"
                    "Zoé.Dupré@Bücher.DE;Zoé;Dupré;Mairie de Vénissieux\n"
                    "jean+annonces@exemple.fr;;;\n"
                    "o'neil@élysée.fr;Ryan;O'Neil;\n", encoding="utf-8")
    import_contacts(db, path, list_name="l")
    path.write_text("email\nailleurs@example.org\n", encoding="utf-8")
    import_contacts(db, path, list_name="other")
    cfg = load_settings(ROOT / "config.example.toml", environ={})
    campaign = load_campaign(EXAMPLES / f"{REPLAY}.md", default_lang="fr", tz=cfg.tz)
    rendered = render_campaign(campaign, cfg)
    prepared = prepare_send(db, rendered, "s", Definition(lists=["l"]), "hash")
    assert prepared.total == 3
    send_id = prepared.send_id
    with db.session(write=False) as session:
        found = [(d.email, d.first_name, d.last_name, d.organization, d.state, d.attempts)
                 for d in session.scalars(select(Delivery).where(Delivery.send_id == send_id)
                                          .order_by(Delivery.id))]
        contacts = [wire_address(c.email, c.domain)
                    for c in session.scalars(select(Contact).order_by(Contact.id))]
    assert found == [
        ("Zoé.Dupré@xn--bcher-kva.de", "Zoé", "Dupré", "Mairie de Vénissieux", "queued", 0),
        ("jean+annonces@exemple.fr", "", "", "", "queued", 0),
        ("o'neil@xn--lyse-9oad.fr", "Ryan", "O'Neil", "", "queued", 0)]
    assert [row[0] for row in found] == contacts[:3]


def test_the_hourly_cap_counts_what_other_sends_have_in_flight(
        db: Database, tmp_path: Path, server: SmtpServer) -> None:
    """The cap is the relay's: messages another running send has in flight count."""
    addresses = audience(db, tmp_path, 6)
    cfg = settings_for(server.port, CITESMAIL_DELIVERY_HOURLY_CAP="5")
    other = tmp_path / "2023-06-13-autre-annonce.md"
    other.write_text((EXAMPLES / f"{REPLAY}.md").read_text(encoding="utf-8"),
                     encoding="utf-8")
    rendered = render_campaign(load_campaign(other, default_lang="fr", tz=cfg.tz), cfg)
    other_id = prepare_send(db, rendered, "s", Definition(lists=["l"]), "hash").send_id
    now = datetime.now(UTC)
    with db.session() as session:  # as another process sending three of its messages
        session.execute(update(Delivery).where(Delivery.send_id == other_id,
                                               Delivery.email.in_(addresses[:3]))
                        .values(state="sending", updated_at=now))
        # and two a dead run left `sending` long ago: they no longer count
        session.execute(update(Delivery).where(Delivery.send_id == other_id,
                                               Delivery.email.in_(addresses[3:5]))
                        .values(state="sending", updated_at=now - timedelta(minutes=20)))
    result = SendRun(db, start(db, cfg), cfg, lambda: make_transport(cfg)).run()
    assert (result.counts["sent"], result.counts["queued"]) == (2, 4)
    assert result.waiting_for_cap is not None
    assert sum(server.handler.received.values()) == 2


def test_a_wait_is_told_once_then_at_most_once_a_minute(db: Database, tmp_path: Path,
                                                        server: SmtpServer) -> None:
    audience(db, tmp_path, 1)
    cfg = settings_for(server.port)
    said: list[str] = []
    send_run = SendRun(db, start(db, cfg), cfg, lambda: make_transport(cfg),
                       notice=said.append)
    state = {"deferred": 2}
    soon = datetime.now(UTC) + timedelta(seconds=30)
    for _ in range(3):
        send_run._announce(soon, state, capped=False)
    send_run._announce(datetime.now(UTC) + timedelta(seconds=1), state, capped=True)  # short
    send_run._announce(soon, state, capped=True)
    assert [text.split(" for ")[1] for text in said] == [
        "the next retry of 2 deferred message(s)", "the hourly cap ([delivery] hourly_cap)"]
    assert said[0].startswith(("waiting 30 s", "waiting 29 s"))


def test_a_new_send_needs_its_recipients(db: Database) -> None:
    cfg = load_settings(ROOT / "config.example.toml", environ={})
    rendered = render_campaign(load_campaign(EXAMPLES / f"{REPLAY}.md", default_lang="fr",
                                             tz=cfg.tz), cfg)
    with pytest.raises(CitesmailError, match="is gone"):
        prepare_send(db, rendered, "s", None, "hash")  # not everyone, by default


def test_one_run_per_send_at_a_time(db: Database, tmp_path: Path, server: SmtpServer) -> None:
    from citesmail.delivery import SendBusy
    from citesmail.delivery.locks import ProcessLock

    audience(db, tmp_path, 2)
    cfg = settings_for(server.port)
    send_id = start(db, cfg)
    with ProcessLock(db, f"send-{send_id}"), pytest.raises(SendBusy):
        run(db, cfg, send_id)
    assert run(db, cfg, send_id) == {"sent": 2}


def test_contact_unsubscribed_after_the_snapshot_is_skipped(db: Database, tmp_path: Path,
                                                           server: SmtpServer) -> None:
    addresses = audience(db, tmp_path, 3)
    cfg = settings_for(server.port)
    send_id = start(db, cfg)
    with db.session() as session:
        session.execute(update(Contact).where(Contact.email == addresses[0])
                        .values(status="unsubscribed"))
    assert run(db, cfg, send_id) == {"sent": 2, "skipped": 1}
    assert addresses[0] not in server.handler.received


def test_sending_when_the_process_died_becomes_unknown(db: Database, tmp_path: Path,
                                                      server: SmtpServer) -> None:
    addresses = audience(db, tmp_path, 3)
    cfg = settings_for(server.port)
    send_id = start(db, cfg)
    with db.session() as session:  # as a run killed between its commit and the server
        session.execute(update(Delivery).where(Delivery.email == addresses[1])
                        .values(state="sending"))
    again = start(db, cfg)  # the next `send` resumes the same send
    assert again == send_id
    assert run(db, cfg, send_id) == {"sent": 2, "unknown": 1}
    assert addresses[1] not in server.handler.received


def left_sending(db: Database, send_id: int, run_id: str, emails: list[str]) -> dict[str, int]:
    """As a run `run_id` that stopped with these recipients `sending`; row ids by address."""
    with db.session() as session:
        session.execute(update(Send).where(Send.id == send_id).values(run_id=run_id))
        session.execute(update(Delivery).where(Delivery.email.in_(emails))
                        .values(state="sending"))
        return {d.email: d.id for d in session.scalars(select(Delivery))}


def test_a_killed_runs_journal_settles_what_it_left_sending(db: Database, tmp_path: Path,
                                                           server: SmtpServer) -> None:
    """Rows are claimed by the batch: the journal tells which of them had gone."""
    addresses = audience(db, tmp_path, 5)
    cfg = settings_for(server.port)
    send_id = start(db, cfg)
    ids = left_sending(db, send_id, "dead-run", addresses[:4])  # killed with four in hand
    run_ = SendRun(db, send_id, cfg, lambda: make_transport(cfg))
    journal = Journal(run_.journal_path("dead-run"), "dead-run")
    journal.transmitting(ids[addresses[0]])
    journal.accepted(ids[addresses[0]])  # the server took it
    journal.transmitting(ids[addresses[1]])  # the server may have it
    journal.close(remove=False)  # addresses[2] and [3] never left
    result = run_.run()
    assert result.recovered == 1
    assert {s: n for s, n in result.counts.items() if n} == {"sent": 4, "unknown": 1}
    assert server.handler.received == dict.fromkeys([*addresses[2:]], 1)
    found = rows(db)
    assert found[addresses[0]].state == "sent" and found[addresses[0]].attempts == 1
    assert found[addresses[1]].state == "unknown"
    assert not run_.journal_path("dead-run").exists()  # the database holds what it said
    assert not run_.journal_path(run_.run_id).exists()  # and what this run's said


def test_a_journal_of_another_run_is_not_believed(db: Database, tmp_path: Path,
                                                  server: SmtpServer) -> None:
    addresses = audience(db, tmp_path, 2)
    cfg = settings_for(server.port)
    send_id = start(db, cfg)
    left_sending(db, send_id, "other-run", addresses[:1])
    run_ = SendRun(db, send_id, cfg, lambda: make_transport(cfg))
    Journal(run_.journal_path("other-run"), "old-run").close(remove=False)  # wrong run
    assert {s: n for s, n in run_.run().counts.items() if n} == {"sent": 1, "unknown": 1}
    assert addresses[0] not in server.handler.received


def test_a_run_whose_journal_is_in_use_does_not_start(db: Database, tmp_path: Path,
                                                     server: SmtpServer) -> None:
    """Another process of this machine still runs the send (its database lock was lost)."""
    addresses = audience(db, tmp_path, 2)
    cfg = settings_for(server.port)
    send_id = start(db, cfg)
    left_sending(db, send_id, "live-run", addresses[:1])
    run_ = SendRun(db, send_id, cfg, lambda: make_transport(cfg))
    live = Journal(run_.journal_path("live-run"), "live-run")
    try:
        with pytest.raises(SendBusy, match="journal is in use"):
            run_.run()
    finally:
        live.close(remove=True)
    assert server.handler.received == {}
    assert rows(db)[addresses[0]].state == "sending"  # left to its run


def lose_the_send(run_: SendRun) -> None:
    with run_.db.session() as session:
        if run_.db.is_postgresql:
            holder = run_.store.holder  # type: ignore[attr-defined]
            assert session.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})
        else:
            session.execute(update(Send).where(Send.id == run_.send_id)
                            .values(run_id="another-run"))


def test_a_run_that_lost_the_send_to_another_stops(db: Database, tmp_path: Path,
                                                  server: SmtpServer) -> None:
    addresses = audience(db, tmp_path, 300)
    cfg = settings_for(server.port, CITESMAIL_DELIVERY_CONNECTIONS="1")
    send_id = start(db, cfg)

    class TakenOver:
        parallel, wire = True, True

        def __init__(self) -> None:
            self.inner, self.count = make_transport(cfg), 0

        def send(self, *args: object, **kwargs: object) -> object:
            self.count += 1
            if self.count == 3:  # meanwhile another run takes the send over
                lose_the_send(fenced)
            return self.inner.send(*args, **kwargs)  # type: ignore[arg-type]

        def close(self) -> None:
            self.inner.close()

    fenced = SendRun(db, send_id, cfg, TakenOver)  # type: ignore[arg-type]
    # SQLite: another run took the send row. PostgreSQL, where runs may join: the run's
    # lock session was cut (the server ended it, as after a network cut).
    said = "lost its database lock" if db.is_postgresql else "another run has taken over"
    with pytest.raises(SendBusy, match=said):
        fenced.run()
    assert not fenced.journal_path(fenced.run_id).exists()  # all it knew is recorded
    received = server.handler.received
    assert set(received.values()) == {1} and len(received) < len(addresses)
    found = rows(db)
    assert all(found[a].state == "sent" for a in received)  # what went is recorded


def test_a_message_that_cannot_be_built_stops_the_send(db: Database, tmp_path: Path,
                                                      server: SmtpServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from citesmail.message import MessageTemplate

    addresses = audience(db, tmp_path, 5)
    cfg = settings_for(server.port)
    send_id = start(db, cfg)
    built = MessageTemplate._parts  # what build and build_wire both make a message of

    def parts(self: MessageTemplate, recipient: object, *args: object) -> list[bytes]:
        if getattr(recipient, "email", "") == addresses[2]:
            raise RuntimeError("a template bug")
        return built(self, recipient, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(MessageTemplate, "_parts", parts)
    with pytest.raises(SendPaused, match=r"cannot build the message for r2@example\.org: "
                                         r"RuntimeError: a template bug"):
        run(db, cfg, send_id)
    assert rows(db)[addresses[2]].state == "queued"  # not failed: nothing was sent
    assert addresses[2] not in server.handler.received
    assert set(server.handler.received.values()) <= {1}


def test_consecutive_connection_failures_pause_the_send(db: Database, tmp_path: Path) -> None:
    audience(db, tmp_path, PAUSE_AFTER + 5)
    cfg = settings_for(free_port())  # nothing listens there
    send_id = start(db, cfg)
    worker_stop = threading.Event()  # as citesmail worker passes its own
    with pytest.raises(SendPaused, match="connection failures in a row"):
        SendRun(db, send_id, cfg, lambda: make_transport(cfg), stop=worker_stop).run()
    assert not worker_stop.is_set()  # one send pausing does not stop the worker
    with db.session(write=False) as session:
        found = counts(session, send_id)
    assert found["sending"] == 0 and found["deferred"] >= PAUSE_AFTER
    assert found["sent"] == 0


def test_a_stop_from_outside_ends_the_run_resumably(db: Database, tmp_path: Path,
                                                    server: SmtpServer) -> None:
    addresses = audience(db, tmp_path, 400)
    cfg = settings_for(server.port, CITESMAIL_DELIVERY_RATE_PER_SECOND="200")
    send_id = start(db, cfg)
    outside = threading.Event()
    threading.Timer(0.5, outside.set).start()
    result = SendRun(db, send_id, cfg, lambda: make_transport(cfg), stop=outside).run()
    assert result.stopped and not result.finished
    assert 0 < result.counts["sent"] < len(addresses)
    assert result.counts["sending"] == 0  # what was claimed and not sent is queued again
    assert run(db, cfg, send_id) == {"sent": len(addresses)}
    assert set(server.handler.received.values()) == {1}


def two_sends(db: Database, tmp_path: Path) -> tuple[int, int, list[str]]:
    """A send to the three contacts of list 'l', and another campaign's send to the one
    contact of list 'other'."""
    addresses = audience(db, tmp_path, 3)
    with db.session() as session:
        add_list(session, "other")
    path = tmp_path / "other.csv"
    path.write_text("email\nailleurs@example.org\n", encoding="utf-8")
    import_contacts(db, path, list_name="other")
    cfg = load_settings(ROOT / "config.example.toml", environ={})
    other = tmp_path / "2023-06-13-autre-annonce.md"
    other.write_text((EXAMPLES / f"{REPLAY}.md").read_text(encoding="utf-8"),
                     encoding="utf-8")
    rendered = render_campaign(load_campaign(other, default_lang="fr", tz=cfg.tz), cfg)
    other_id = prepare_send(db, rendered, "o", Definition(lists=["other"]), "h").send_id
    return start(db, cfg), other_id, addresses


def test_a_send_prepared_again_is_resumed_with_its_own_recipients(
        db: Database, tmp_path: Path) -> None:
    send_id, _, _ = two_sends(db, tmp_path)
    cfg = load_settings(ROOT / "config.example.toml", environ={})
    rendered = render_campaign(load_campaign(EXAMPLES / f"{REPLAY}.md", default_lang="fr",
                                             tz=cfg.tz), cfg)
    again = prepare_send(db, rendered, "s", None, "hash")
    assert again == Prepared(send_id, 3, True, False)
    assert prepare_send(db, rendered, "s", None, "edited") == Prepared(send_id, 3, True, True)


def test_resend_unknown_requeues_only_the_unknown_rows_of_its_send(
        db: Database, tmp_path: Path) -> None:
    send_id, other_id, addresses = two_sends(db, tmp_path)
    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    with db.session() as session:
        session.execute(update(Delivery).values(state="unknown", updated_at=long_ago))
        session.execute(update(Delivery).where(Delivery.email == addresses[2])
                        .values(state="sent"))
        session.execute(update(Send).values(state="done", finished_at=long_ago))
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert requeue_unknown(db, send_id) == 2
    with db.session(write=False) as session:
        found = {(d.send_id, d.email): (d.state, d.updated_at)
                 for d in session.scalars(select(Delivery))}
        sends = {s.id: (s.state, s.finished_at) for s in session.scalars(select(Send))}
    for address in addresses[:2]:
        state, updated_at = found[send_id, address]
        assert state == "queued" and updated_at is not None and updated_at >= before
    assert found[send_id, addresses[2]] == ("sent", long_ago)
    assert found[other_id, "ailleurs@example.org"] == ("unknown", long_ago)
    assert sends == {send_id: ("running", None), other_id: ("done", long_ago)}
    assert requeue_unknown(db, send_id) == 0  # none left
    assert requeue_unknown(db, other_id) == 1


def test_a_summary_names_the_states_that_have_rows() -> None:
    found = dict.fromkeys(map(str, DeliveryState), 0)
    assert summary(found) == "no recipients"
    found |= {"sent": 4, "failed": 1, "unknown": 2}
    assert summary(found) == "sent 4, failed 1, unknown 2"


def test_a_scheduled_send_starts_once_with_its_segments_recipients(
        db: Database, tmp_path: Path) -> None:
    audience(db, tmp_path, 3)
    cfg = load_settings(ROOT / "config.example.toml", environ={})
    rendered = render_campaign(load_campaign(EXAMPLES / f"{REPLAY}.md", default_lang="fr",
                                             tz=cfg.tz), cfg)
    assert start_scheduled(db, REPLAY) is None  # nothing scheduled
    with db.session() as session:
        add_segment(session, "s", Definition(lists=["l"]))
        session.add(Send(campaign=REPLAY, segment="s", subject=rendered.subject,
                         html=rendered.html, text=rendered.text, slots=[],
                         source_hash="hash", state="scheduled"))
    before = datetime.now(UTC) - timedelta(seconds=1)
    started = start_scheduled(db, REPLAY)
    assert started is not None
    assert (started.total, started.resumed, started.changed) == (3, False, False)
    with db.session(write=False) as session:
        send = session.scalar(select(Send).where(Send.campaign == REPLAY))
        assert send is not None and send.id == started.send_id
        assert send.state == "running"
        assert send.started_at is not None and send.started_at >= before
        assert counts(session, send.id)["queued"] == 3
    assert start_scheduled(db, REPLAY) == Prepared(started.send_id, 3, True, False)
    for state in ("done", "missed"):
        with db.session() as session:
            session.execute(update(Send).values(state=state))
        assert start_scheduled(db, REPLAY) is None


def contacts_by_email(db: Database) -> dict[str, Contact]:
    with db.session(write=False) as session:
        return {c.email: c for c in session.scalars(select(Contact))}


def test_a_refused_message_fails_and_only_a_refused_address_bounces_its_contact(
        db: Database, tmp_path: Path, server: SmtpServer) -> None:
    """A 5xx to the message (at DATA) says nothing of the address: its contact stays
    active. A 5xx to the address bounces that contact, and no other."""
    addresses = audience(db, tmp_path, 3)
    server.handler.at_data[addresses[0]] = [554]
    server.handler.at_rcpt[addresses[1]] = [550]
    before = contacts_by_email(db)[addresses[1]].updated_at
    cfg = settings_for(server.port)
    assert run(db, cfg, start(db, cfg)) == {"sent": 1, "failed": 2}
    found = rows(db)
    assert (found[addresses[0]].state, found[addresses[0]].last_code) == ("failed", 554)
    assert (found[addresses[1]].state, found[addresses[1]].last_code) == ("failed", 550)
    contacts = contacts_by_email(db)
    assert [contacts[a].status for a in addresses] == ["active", "bounced", "active"]
    assert before is not None and contacts[addresses[1]].updated_at > before


def test_a_deferred_message_waits_its_first_delay_and_the_run_says_when(
        db: Database, tmp_path: Path, server: SmtpServer) -> None:
    """The first retry waits the first of [delivery] retry_delays; the run ends, saying
    when that is, counting only its own send's deferred rows."""
    addresses = audience(db, tmp_path, 2)
    server.handler.at_rcpt[addresses[0]] = [451]
    cfg = settings_for(server.port, CITESMAIL_DELIVERY_RETRY_DELAYS="[600, 3600]")
    before = datetime.now(UTC)
    send_id = start(db, cfg)
    result = SendRun(db, send_id, cfg, lambda: make_transport(cfg)).run()
    row = rows(db)[addresses[0]]
    assert (row.state, row.attempts) == ("deferred", 1)
    assert row.next_attempt_at is not None
    assert before + timedelta(seconds=600) <= row.next_attempt_at <= \
        datetime.now(UTC) + timedelta(seconds=600)
    assert not result.finished and result.next_retry == row.next_attempt_at
    with db.session() as session:  # another send's retry, due sooner: not this one's
        other = Send(campaign="other", segment="s", subject="s", html="", text="",
                     slots=[], source_hash="h", state="running")
        session.add(other)
        session.flush()
        session.add(Delivery(send_id=other.id, email="x@example.org", first_name="",
                             last_name="", organization="", state="deferred", attempts=1,
                             next_attempt_at=datetime.now(UTC) + timedelta(seconds=30)))
    again = SendRun(db, send_id, cfg, lambda: make_transport(cfg)).run()
    assert again.next_retry == row.next_attempt_at


class Meanwhile:
    """The SMTP transport, with `before(recipient)` run just before each message goes:
    what happens elsewhere between a row's claim and the server's answer."""

    parallel, wire = True, True

    def __init__(self, cfg: Settings, before: Callable[[str], None]) -> None:
        self.inner, self.before = make_transport(cfg), before

    def send(self, sender: str, recipient: str, data: bytes,
             before_data: Callable[[], None] | None = None,
             then: tuple[str, str] | None = None) -> Outcome:
        self.before(recipient)
        return self.inner.send(sender, recipient, data, before_data, then)

    def close(self) -> None:
        self.inner.close()


def test_a_contact_who_unsubscribed_before_the_bounce_stays_unsubscribed(
        db: Database, tmp_path: Path, server: SmtpServer) -> None:
    """A 5xx to the address bounces an active contact only: one who unsubscribed between
    the claim of their message and the server's answer keeps their own word."""
    addresses = audience(db, tmp_path, 3)
    server.handler.at_rcpt[addresses[0]] = [550]
    server.handler.at_rcpt[addresses[1]] = [550]
    cfg = settings_for(server.port)
    send_id = start(db, cfg)

    def unsubscribes(recipient: str) -> None:
        if recipient == addresses[0]:
            with db.session() as session:
                unsubscribe(session, (recipient,))

    result = SendRun(db, send_id, cfg, lambda: Meanwhile(cfg, unsubscribes)).run()
    assert {s: n for s, n in result.counts.items() if n} == {"sent": 1, "failed": 2}
    found = rows(db)
    assert [(found[a].state, found[a].last_code) for a in addresses[:2]] == [
        ("failed", 550), ("failed", 550)]
    contacts = contacts_by_email(db)
    assert [contacts[a].status for a in addresses] == ["unsubscribed", "bounced", "active"]


def test_an_unforeseen_error_is_kept_to_the_1000_characters_its_column_holds(
        db: Database, tmp_path: Path, server: SmtpServer) -> None:
    """An exception no transport foresaw (the message may have gone: unknown) can say
    anything at any length; the send log keeps its first 1,000 characters, all that
    `last_error` holds (PostgreSQL refuses one more)."""
    addresses = audience(db, tmp_path, 2)
    cfg = settings_for(server.port)
    send_id = start(db, cfg)
    why = "the relay's library gave up: " + "détail " * 300

    def fails(recipient: str) -> None:
        if recipient == addresses[0]:
            raise RuntimeError(why)

    result = SendRun(db, send_id, cfg, lambda: Meanwhile(cfg, fails)).run()
    assert {s: n for s, n in result.counts.items() if n} == {"sent": 1, "unknown": 1}
    found = rows(db)[addresses[0]]
    assert (found.state, found.attempts) == ("unknown", 1)
    assert found.last_error == f"RuntimeError: {why}"[:1000]
    assert server.handler.received == {addresses[1]: 1}


def test_a_send_to_nobody_resumes_as_a_send_to_nobody(db: Database, tmp_path: Path) -> None:
    """A segment that matched nobody: the send, prepared again, still counts 0."""
    audience(db, tmp_path, 2)
    with db.session() as session:
        add_list(session, "empty")
    cfg = load_settings(ROOT / "config.example.toml", environ={})
    rendered = render_campaign(load_campaign(EXAMPLES / f"{REPLAY}.md", default_lang="fr",
                                             tz=cfg.tz), cfg)
    first = prepare_send(db, rendered, "e", Definition(lists=["empty"]), "hash")
    assert (first.total, first.resumed) == (0, False)
    assert prepare_send(db, rendered, "e", None, "hash") == Prepared(first.send_id, 0, True,
                                                                     False)


def test_a_waiting_run_names_the_retry_to_come_not_one_already_made(
        db: Database, tmp_path: Path, server: SmtpServer) -> None:
    """One message is deferred, retried and sent; another is deferred twice. The run then
    waits for the second one's retry, says so, and (stopped) names that retry: not the
    past retry time of the message already sent."""
    addresses = audience(db, tmp_path, 2)
    server.handler.at_rcpt[addresses[0]] = [451]
    server.handler.at_rcpt[addresses[1]] = [451, 451]
    cfg = settings_for(server.port, CITESMAIL_DELIVERY_RETRY_DELAYS="[1, 20]")
    stop = threading.Event()
    said: list[str] = []

    def notice(text: str) -> None:  # the run says it waits: stop it there
        said.append(text)
        stop.set()

    result = SendRun(db, start(db, cfg), cfg, lambda: make_transport(cfg), stop=stop,
                     notice=notice).run()
    found = rows(db)
    assert (found[addresses[0]].state, found[addresses[0]].attempts) == ("sent", 2)
    assert (found[addresses[1]].state, found[addresses[1]].attempts) == ("deferred", 2)
    assert result.stopped and not result.finished
    assert result.next_retry == found[addresses[1]].next_attempt_at
    assert len(said) == 1 and "for the next retry of 1 deferred message(s)" in said[0]


def test_contacts_unsubscribed_meanwhile_are_set_aside_by_one_claim_not_one_each(
        db: Database, tmp_path: Path, server: SmtpServer) -> None:
    """A claim passes over every unsubscribed contact in its batch: they are all skipped
    in the same transaction (the same moment), and the send does not stall on each."""
    addresses = audience(db, tmp_path, 8)
    cfg = settings_for(server.port)
    send_id = start(db, cfg)
    with db.session() as session:
        unsubscribe(session, tuple(addresses[1::2]))
    assert run(db, cfg, send_id) == {"sent": 4, "skipped": 4}
    assert set(server.handler.received) == set(addresses[::2])
    found = rows(db)
    assert len({found[a].updated_at for a in addresses[1::2]}) == 1


def test_each_message_is_its_own_recipients_with_rows_and_contacts_numbered_apart(
        db: Database, tmp_path: Path, server: SmtpServer) -> None:
    """Contacts outside the segment come first, so contact ids and row ids differ: each
    message carries its own recipient's name, organisation, lists (none named for one who
    is in the segment through a private list only) and link token; the row set aside is
    the one of the contact who left (one by status, one whose request is still only in
    the intake, with the intake busy elsewhere)."""
    with db.session() as session:
        add_list(session, "autre")
        add_list(session, "l", title="Emploi et insertion", public=True)
        add_list(session, "prive")
        add_segment(session, "s", Definition(lists=["l", "prive"]))
    path = tmp_path / "c.csv"
    header = "email;first_name;last_name;organization\n"
    path.write_text(header + "".join(f"x{i}@example.org;;;\n" for i in range(3)),
                    encoding="utf-8")
    import_contacts(db, path, list_name="autre")
    path.write_text(header + "p5@example.org;Prénom5;Nom5;Structure 5\n", encoding="utf-8")
    import_contacts(db, path, list_name="prive")
    path.write_text(header + "".join(f"r{i}@example.org;Prénom{i};Nom{i};Structure {i}\n"
                                     for i in range(5)), encoding="utf-8")
    import_contacts(db, path, list_name="l")
    source = (EXAMPLES / f"{REPLAY}.md").read_text(encoding="utf-8")
    campaign_file = tmp_path / f"{REPLAY}.md"
    campaign_file.write_text(source + "\nPour {{ recipient.organization }}.\n",
                             encoding="utf-8")
    cfg = settings_for(server.port)
    campaign = load_campaign(campaign_file, default_lang="fr", tz=cfg.tz)
    send_id = prepare_send(db, render_campaign(campaign, cfg), "s",
                           Definition(lists=["l", "prive"]), "hash").send_id
    with db.session() as session:
        ids = {c.email: c.id for c in session.scalars(select(Contact))}
        unsubscribe(session, ("r1@example.org",))
    intake = intake_path(db, cfg.workspace)
    append(intake, ids["r3@example.org"])
    lock = os.open(f"{intake}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)  # another process is applying: the send cannot
    try:
        assert run(db, cfg, send_id) == {"sent": 4, "skipped": 2}
    finally:
        os.close(lock)
    found = rows(db)
    assert {a: found[a].state for a in found} == {
        "r0@example.org": "sent", "r1@example.org": "skipped", "r2@example.org": "sent",
        "r3@example.org": "skipped", "r4@example.org": "sent", "p5@example.org": "sent"}
    assert sorted(server.handler.received) == ["p5@example.org", "r0@example.org",
                                               "r2@example.org", "r4@example.org"]
    for data in server.handler.messages:
        message = email.message_from_bytes(data, policy=policy.default)
        to = message["To"].addresses[0]
        number = to.addr_spec[1]
        assert to.display_name == f"Prénom{number} Nom{number}"
        text = message.get_body(("plain",)).get_content()
        assert f"Pour Structure {number}." in text
        # The footer names their public list; for a private list's member, the
        # organisation's mailing list.
        assert ("Emploi et insertion" in text) is (to.addr_spec[0] == "r")
        lists = "Emploi et insertion" if to.addr_spec[0] == "r" else \
            f"la liste de diffusion de {cfg.organization.name}"
        assert f"{lists}." in text.splitlines()
        assert "None" not in text
        unsubscribe_link = message["List-Unsubscribe"].split(",")[0].strip("<> ")
        token = unsubscribe_link.rsplit("/", 1)[1]
        assert read_token(SECRET, token) == (ids[to.addr_spec], REPLAY)
