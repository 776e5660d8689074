"""The send log's store seen one step at a time (`SqlStore`, as a run drives it): what
each claim, record and take-over leaves in the rows, how the hourly cap counts across
sends, and what a run that lost the send is told. No SMTP server: the store is asked
directly, and the moments that matter are set in the database, not waited for."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from citesmail.audience.consent import ConsentKind
from citesmail.audience.contacts import unsubscribe
from citesmail.audience.importer import import_contacts
from citesmail.audience.lists import add_list
from citesmail.audience.segments import AnyOf, Condition, Definition, parse_where
from citesmail.campaigns import load_campaign
from citesmail.config import load_settings
from citesmail.db import ConsentEvent, Contact, Database, Delivery, Send, open_database
from citesmail.delivery import Claimed, Prepared, SendBusy, SqlStore, prepare_send
from citesmail.delivery.journal import Journal
from citesmail.delivery.locks import ProcessLock
from citesmail.delivery.transports import Outcome
from citesmail.errors import CitesmailError
from citesmail.render import render_campaign
from tests.conftest import EXAMPLES, REPLAY, ROOT
from tests.delivery.test_store import audience, left_sending, rows, start

BUSY_HINT = "let it finish"


def said(error: CitesmailError) -> tuple[str, str]:
    """What the command prints: the message, and the hint after its dash."""
    return error.problems[0].message, error.problems[0].hint


def journals(tmp_path: Path) -> Callable[[str], Path]:
    return lambda run_id: tmp_path / f"send-{run_id}.journal"


def store_of(db: Database, send_id: int, tmp_path: Path, cap: int = 0) -> SqlStore:
    return SqlStore(db, send_id, retry_delays=[60, 600], hourly_cap=cap,
                    intake=tmp_path / "intake")


def other_send(db: Database, state: str, emails: list[str]) -> int:
    """Another campaign's send with one row per address, all `queued`."""
    with db.session() as session:
        send = Send(campaign=f"other-{state}", segment="s", subject="s", html="", text="",
                    slots=[], source_hash="h", state=state)
        session.add(send)
        session.flush()
        session.add_all(Delivery(send_id=send.id, email=address, first_name="", last_name="",
                                 organization="", state="queued", attempts=0)
                        for address in emails)
        return send.id


def set_rows(db: Database, send_id: int, emails: list[str], **values: object) -> None:
    with db.session() as session:
        session.execute(update(Delivery).where(Delivery.send_id == send_id,
                                               Delivery.email.in_(emails)).values(**values))


def claim(db: Database, send_id: int, tmp_path: Path, cap: int,
          want: int = 10) -> tuple[list[str], int, datetime | None]:
    """One step of a new run of the send: who it claims, the room left, the cap's time."""
    store = store_of(db, send_id, tmp_path, cap)
    run_id = store.take_over(journals(tmp_path)).run_id
    step = store.step(run_id, [], want, idle=True)
    return [c.recipient.email for c in step.claimed], step.room, step.cap_until


def test_the_hourly_cap_counts_the_last_hours_messages_of_every_send(
        db: Database, tmp_path: Path) -> None:
    """Messages any send mailed in the last hour and those a running send has in flight
    fill the cap; what is older, or only recently changed without going, does not."""
    addresses = audience(db, tmp_path, 4)
    send_id = start(db, load_settings(ROOT / "config.example.toml", environ={}))
    now = datetime.now(UTC)
    mailed = [f"o{i}@example.org" for i in range(4)]
    other = other_send(db, "running",
                       [*mailed, "f@example.org", "d@example.org", "s@example.org"])
    # Another send's rows that changed a moment ago but hold no slot of the relay.
    set_rows(db, other, ["f@example.org"], state="failed", updated_at=now)
    set_rows(db, other, ["d@example.org"], state="deferred", updated_at=now,
             next_attempt_at=now + timedelta(minutes=5))
    set_rows(db, other, ["s@example.org"], state="skipped", updated_at=now)
    set_rows(db, other, mailed[:2], state="sent", sent_at=now - timedelta(minutes=90))
    assert claim(db, send_id, tmp_path, cap=1) == ([addresses[0]], 1, None)  # 1 is a cap
    set_rows(db, send_id, addresses, state="queued")
    assert claim(db, send_id, tmp_path, cap=4) == (addresses, 4, None)  # all 4 slots free
    set_rows(db, send_id, addresses, state="queued")
    half_an_hour_ago = now - timedelta(minutes=30)
    set_rows(db, other, mailed[2:], state="sent", sent_at=half_an_hour_ago)
    assert claim(db, send_id, tmp_path, cap=4) == (addresses[:2], 2, None)
    set_rows(db, send_id, addresses, state="queued")
    # Full: the cap frees a slot an hour after the oldest message of the last hour.
    assert claim(db, send_id, tmp_path, cap=2) == ([], 0, half_an_hour_ago + timedelta(hours=1))


def test_a_cap_filled_by_messages_in_flight_is_looked_at_again_in_five_seconds(
        db: Database, tmp_path: Path) -> None:
    """Another running send has as many messages in flight as the cap allows: nothing is
    claimed, and the run is told to look again a few seconds later (they will be sent or
    not by then), not an hour later."""
    audience(db, tmp_path, 2)
    send_id = start(db, load_settings(ROOT / "config.example.toml", environ={}))
    in_flight = ["o0@example.org", "o1@example.org"]
    other = other_send(db, "running", in_flight)
    set_rows(db, other, in_flight, state="sending", updated_at=datetime.now(UTC))
    before = datetime.now(UTC)
    claimed, room, cap_until = claim(db, send_id, tmp_path, cap=2)
    after = datetime.now(UTC)
    assert (claimed, room) == ([], 0)
    assert cap_until is not None
    assert before + timedelta(seconds=5) <= cap_until <= after + timedelta(seconds=5)
    assert {row.state for row in rows(db).values() if row.send_id == send_id} == {"queued"}


def test_claimed_skipped_and_requeued_rows_say_when_they_changed(
        db: Database, tmp_path: Path) -> None:
    """A claim marks its rows `sending` (what the cap and a later take-over count) and
    its unsubscribed contacts' rows `skipped`, at the claim's moment; a message that never
    left (the run stopping, a refused login) goes back to the queue, at that moment too."""
    addresses = audience(db, tmp_path, 4)
    send_id = start(db, load_settings(ROOT / "config.example.toml", environ={}))
    with db.session() as session:
        unsubscribe(session, (addresses[1],))
    store = store_of(db, send_id, tmp_path)
    run_id = store.take_over(journals(tmp_path)).run_id
    before = datetime.now(UTC)
    step = store.step(run_id, [], 10, idle=False)
    found = rows(db)
    assert [c.recipient.email for c in step.claimed] == [addresses[0], *addresses[2:]]
    assert {a: found[a].state for a in addresses} == {
        addresses[0]: "sending", addresses[1]: "skipped", addresses[2]: "sending",
        addresses[3]: "sending"}
    for address in addresses:
        changed = found[address].updated_at
        assert changed is not None and changed >= before
    by_email: dict[str, Claimed] = {c.recipient.email: c for c in step.claimed}
    later = datetime.now(UTC)
    refused = Outcome("temporary", 530, "login refused", fatal=True)
    still = store.record([(by_email[addresses[0]], None),
                          (by_email[addresses[2]], refused)])
    assert still == 1  # addresses[3]'s message is still going
    found = rows(db)
    for address in (addresses[0], addresses[2]):
        row = found[address]
        assert (row.state, row.attempts) == ("queued", 0)
        assert row.updated_at is not None and row.updated_at >= later


def test_a_take_over_settles_each_row_the_dead_run_left_by_its_journal(
        db: Database, tmp_path: Path) -> None:
    """Rows the journal says the server took are sent once (counted once, with the time
    of the take-over), rows it was sending are unknown and say why, rows that never left
    are queued again; then the send belongs to the new run."""
    addresses = audience(db, tmp_path, 7)
    send_id = start(db, load_settings(ROOT / "config.example.toml", environ={}))
    ids = left_sending(db, send_id, "dead-run", addresses[:6])
    journal = Journal(journals(tmp_path)("dead-run"), "dead-run")
    for address in addresses[:4]:
        journal.transmitting(ids[address])
    for address in addresses[:2]:
        journal.accepted(ids[address])
    journal.close(remove=False)
    before = datetime.now(UTC)
    recovery = store_of(db, send_id, tmp_path).take_over(journals(tmp_path))
    assert (recovery.unknown, recovery.previous) == (2, [journals(tmp_path)("dead-run")])
    found = rows(db)
    for address in addresses[:2]:
        row = found[address]
        assert (row.state, row.attempts, row.last_code) == ("sent", 1, 250)
        assert row.sent_at is not None and row.sent_at >= before
        assert row.updated_at is not None and row.updated_at >= before
    for address in addresses[2:4]:
        row = found[address]
        assert (row.state, row.attempts) == ("unknown", 0)
        assert row.last_error == ("the run stopped while this message was being sent "
                                  "(the server may have it)")
        assert row.updated_at is not None and row.updated_at >= before
    for address in addresses[4:6]:
        row = found[address]
        assert (row.state, row.attempts) == ("queued", 0)
        assert row.updated_at is not None and row.updated_at >= before
    assert (found[addresses[6]].state, found[addresses[6]].updated_at) == ("queued", None)
    with db.session(write=False) as session:
        holder = session.scalar(select(Send.run_id).where(Send.id == send_id))
    assert holder == recovery.run_id and holder is not None and len(holder) == 32


def test_a_run_whose_send_was_taken_over_is_told_so_and_records_nothing(
        db: Database, tmp_path: Path) -> None:
    """Two take-overs (the first run lost its lock): the first run's next step is refused
    with a message saying why, and its results are not recorded; the second run goes on."""
    addresses = audience(db, tmp_path, 2)
    send_id = start(db, load_settings(ROOT / "config.example.toml", environ={}))
    first, second = store_of(db, send_id, tmp_path), store_of(db, send_id, tmp_path)
    first_run = first.take_over(journals(tmp_path)).run_id
    claimed = first.step(first_run, [], 1, idle=False).claimed
    second_run = second.take_over(journals(tmp_path)).run_id
    assert second_run != first_run
    with pytest.raises(SendBusy) as refused:
        first.step(first_run, [(claimed[0], Outcome("sent", 250))], 1, idle=False)
    assert said(refused.value) == (
        "another run has taken over this send", BUSY_HINT)
    assert rows(db)[addresses[0]].state == "unknown"  # settled by the second take-over
    assert [c.recipient.email for c in second.step(second_run, [], 2, idle=False).claimed] \
        == [addresses[1]]


def test_a_send_whose_journal_is_in_use_is_not_taken_over(db: Database,
                                                         tmp_path: Path) -> None:
    """Its run still goes on in another process of this machine: the take-over says so,
    and how to go on, and changes nothing."""
    addresses = audience(db, tmp_path, 2)
    send_id = start(db, load_settings(ROOT / "config.example.toml", environ={}))
    left_sending(db, send_id, "live-run", addresses[:1])
    live = Journal(journals(tmp_path)("live-run"), "live-run")
    try:
        with pytest.raises(SendBusy) as busy:
            store_of(db, send_id, tmp_path).take_over(journals(tmp_path))
    finally:
        live.close(remove=True)
    assert said(busy.value) == (
        "this campaign is being sent by another process on this machine (its journal is "
        "in use)", "let it finish, or stop it first")
    with db.session(write=False) as session:
        assert session.scalar(select(Send.run_id).where(Send.id == send_id)) == "live-run"
    assert rows(db)[addresses[0]].state == "sending"


def test_a_new_send_is_running_from_now_with_its_segment(db: Database,
                                                        tmp_path: Path) -> None:
    audience(db, tmp_path, 3)
    cfg = load_settings(ROOT / "config.example.toml", environ={})
    rendered = render_campaign(load_campaign(EXAMPLES / f"{REPLAY}.md", default_lang="fr",
                                             tz=cfg.tz), cfg)
    before = datetime.now(UTC)
    prepared = prepare_send(db, rendered, "s", Definition(lists=["l"]), "hash")
    assert prepared == Prepared(prepared.send_id, 3, False, False)
    with db.session(write=False) as session:
        send = session.get(Send, prepared.send_id)
        assert send is not None
        assert (send.state, send.segment, send.source_hash) == ("running", "s", "hash")
        assert send.started_at is not None and send.started_at >= before


def test_a_scheduled_send_is_not_sent_now_and_a_vanished_one_says_what_to_do(
        db: Database, tmp_path: Path) -> None:
    audience(db, tmp_path, 1)
    cfg = load_settings(ROOT / "config.example.toml", environ={})
    rendered = render_campaign(load_campaign(EXAMPLES / f"{REPLAY}.md", default_lang="fr",
                                             tz=cfg.tz), cfg)
    with pytest.raises(CitesmailError) as gone:
        prepare_send(db, rendered, "s", None, "hash")
    assert said(gone.value) == (
        f"the send of '{REPLAY}' is gone", "check citesmail status, then run the command again")
    at = datetime(2026, 12, 1, 9, 30, 45, tzinfo=UTC)
    with db.session() as session:
        session.add(Send(campaign=REPLAY, segment="s", subject=rendered.subject,
                         html=rendered.html, text=rendered.text, slots=[], source_hash="hash",
                         state="scheduled", scheduled_at=at))
    with pytest.raises(CitesmailError) as scheduled:
        prepare_send(db, rendered, "s", Definition(lists=["l"]), "hash")
    assert said(scheduled.value) == (
        f"'{REPLAY}' is scheduled for 2026-12-01 09:30 UTC",
        f"citesmail unschedule {REPLAY} first, to send it now")
    with db.session(write=False) as session:
        assert session.scalar(select(Send.state)) == "scheduled"
        assert list(session.scalars(select(Delivery))) == []


def test_a_send_queues_its_recipients_in_the_order_they_were_added(
        db: Database, tmp_path: Path) -> None:
    """Rows are claimed in the snapshot's order: the contacts' own, even when the
    database finds them through an index in another order (here by organisation)."""
    with db.session() as session:
        add_list(session, "l")
    path = tmp_path / "c.csv"
    path.write_text("email;organization\n"
                    + "".join(f"{name}@example.org;{org}\n" for name, org in (
                        ("zoe", "Ville de Zèbre"), ("alice", "Agence Alpha"),
                        ("marc", "Mairie de Mâcon"), ("bea", "Agence Alpha"),
                        ("yann", "Ville de Zèbre"))), encoding="utf-8")
    import_contacts(db, path, list_name="l")
    where: list[Condition | AnyOf] = [parse_where("organization=Ville de Zèbre"),
                                      parse_where("organization=Agence Alpha")]
    cfg = load_settings(ROOT / "config.example.toml", environ={})
    rendered = render_campaign(load_campaign(EXAMPLES / f"{REPLAY}.md", default_lang="fr",
                                             tz=cfg.tz), cfg)
    send_id = prepare_send(db, rendered, "s", Definition(lists=["l"], where=where),
                           "hash").send_id
    with db.session(write=False) as session:
        queued = list(session.scalars(select(Delivery.email).order_by(Delivery.id)))
    assert queued == ["zoe@example.org", "alice@example.org", "bea@example.org",
                      "yann@example.org"]
    assert claim(db, send_id, tmp_path, cap=2)[0] == queued[:2]


def test_a_bounce_goes_into_the_contacts_history_with_its_campaign_and_answer(
        db: Database, tmp_path: Path) -> None:
    """An address the server refused is marked bounced, with an event that names this
    send's campaign (not another send's) and the server's answer; the run is told how
    many of its own rows are still on their way, whatever other sends have in flight."""
    addresses = audience(db, tmp_path, 3)
    before_ours = other_send(db, "running", ["o0@example.org", "o1@example.org"])
    set_rows(db, before_ours, ["o0@example.org", "o1@example.org"], state="sending",
             updated_at=datetime.now(UTC))
    send_id = start(db, load_settings(ROOT / "config.example.toml", environ={}))
    store = store_of(db, send_id, tmp_path)
    run_id = store.take_over(journals(tmp_path)).run_id
    by_email = {c.recipient.email: c for c in store.step(run_id, [], 10, idle=False).claimed}
    refused = Outcome("permanent", 550, "5.1.1 no such user", bounce=True)
    assert store.record([(by_email[addresses[0]], refused)]) == 2  # ours still going
    with db.session(write=False) as session:
        contact = session.scalar(select(Contact).where(Contact.email == addresses[0]))
        assert contact is not None and contact.status == "bounced"
        events = [(e.kind, e.source, e.campaign) for e in session.scalars(
            select(ConsentEvent).where(ConsentEvent.contact_id == contact.id,
                                       ConsentEvent.kind == ConsentKind.BOUNCE))]
    assert events == [(ConsentKind.BOUNCE, f"send {REPLAY}: 550 5.1.1 no such user", REPLAY)]
    assert rows(db)[addresses[0]].state == "failed"


def test_finishing_a_send_marks_it_done_once_and_no_other(db: Database,
                                                          tmp_path: Path) -> None:
    """`done` with the moment it finished; another running send stays running; a send
    finished already keeps the time it finished (a second finish changes nothing)."""
    audience(db, tmp_path, 1)
    send_id = start(db, load_settings(ROOT / "config.example.toml", environ={}))
    other = other_send(db, "running", [])
    before = datetime.now(UTC)
    store_of(db, send_id, tmp_path).finish()
    after = datetime.now(UTC)

    def state_of(send: int) -> tuple[str, datetime | None]:
        with db.session(write=False) as session:
            found = session.get(Send, send)
            assert found is not None
            finished = found.finished_at
            return found.state, finished and finished.replace(tzinfo=UTC)

    state, finished = state_of(send_id)
    assert state == "done" and finished is not None and before <= finished <= after
    assert state_of(other) == ("running", None)
    long_ago = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with db.session() as session:
        session.execute(update(Send).where(Send.id == send_id).values(finished_at=long_ago))
    store_of(db, send_id, tmp_path).finish()
    assert state_of(send_id) == ("done", long_ago)


def test_progress_and_the_campaign_are_read_while_another_writer_holds_the_lock(
        db: Database, db_url: str, tmp_path: Path) -> None:
    """The progress a run shows and the campaign it sends are reads: they answer at once
    while an import (or another run's record) holds SQLite's write lock, instead of
    waiting for it and stopping the run with a busy database."""
    addresses = audience(db, tmp_path, 3)
    send_id = start(db, load_settings(ROOT / "config.example.toml", environ={}))
    impatient = open_database(db_url, busy_timeout=timedelta(milliseconds=200))
    try:
        store = SqlStore(impatient, send_id, retry_delays=[60], hourly_cap=0,
                         intake=tmp_path / "intake")
        with db.session() as writer:
            writer.execute(update(Delivery).where(Delivery.email == addresses[0])
                           .values(state="skipped"))  # not committed yet
            assert {k: n for k, n in store.counts().items() if n} == {"queued": 3}
            assert (store.campaign().slug, store.campaign().segment) == (REPLAY, "s")
        assert {k: n for k, n in store.counts().items() if n} == {"queued": 2, "skipped": 1}
    finally:
        impatient.close()


def test_a_claim_takes_due_retries_only_to_fill_what_the_queue_leaves(
        db: Database, tmp_path: Path) -> None:
    """Queued rows first, then retries whose time has come, earliest first, and never
    more than the claim asked for; a retry still to come is left alone."""
    addresses = audience(db, tmp_path, 5)
    send_id = start(db, load_settings(ROOT / "config.example.toml", environ={}))
    now = datetime.now(UTC)
    for minutes, address in zip((3, 9, 6), addresses[1:4], strict=True):
        set_rows(db, send_id, [address], state="deferred", attempts=1,
                 next_attempt_at=now - timedelta(minutes=minutes))
    set_rows(db, send_id, [addresses[4]], state="deferred", attempts=1,
             next_attempt_at=now + timedelta(minutes=5))
    assert claim(db, send_id, tmp_path, cap=0, want=3)[0] == [
        addresses[0], addresses[2], addresses[3]]
    assert {a: row.state for a, row in rows(db).items()} == {
        addresses[0]: "sending", addresses[1]: "deferred", addresses[2]: "sending",
        addresses[3]: "sending", addresses[4]: "deferred"}


def test_a_step_that_claims_nothing_names_the_next_retry_not_the_cap(
        db: Database, tmp_path: Path) -> None:
    """A run that wants no more messages (it is stopping, or the queue was dry a moment
    ago) is not told about the hourly cap, even a full one: what it waits for, or reports
    when it stops, is its own next retry."""
    addresses = audience(db, tmp_path, 2)
    send_id = start(db, load_settings(ROOT / "config.example.toml", environ={}))
    other = other_send(db, "running", ["o0@example.org"])
    set_rows(db, other, ["o0@example.org"], state="sent",
             sent_at=datetime.now(UTC) - timedelta(minutes=10))
    set_rows(db, send_id, addresses, state="deferred", attempts=1,
             next_attempt_at=datetime.now(UTC) + timedelta(minutes=5))
    store = store_of(db, send_id, tmp_path, cap=1)
    run_id = store.take_over(journals(tmp_path)).run_id
    step = store.step(run_id, [], 0, idle=True)
    assert (step.claimed, step.cap_until) == ([], None)
    assert step.room != 0 and step.next_retry is not None
    assert step.counts is not None and step.counts["deferred"] == 2
    full = store.step(run_id, [], 5, idle=True)  # one that wants some is told the cap
    assert (full.claimed, full.room) == ([], 0) and full.cap_until is not None


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite: one writer
def test_rows_another_run_is_claiming_are_skipped_not_waited_for(
        db: Database, tmp_path: Path) -> None:
    """On PostgreSQL runs of one send claim side by side: rows locked by another run's
    claim that has not committed yet are passed over, so the claim goes on at once
    with the rest instead of waiting for that run (or claiming its rows twice)."""
    addresses = audience(db, tmp_path, 4)
    send_id = start(db, load_settings(ROOT / "config.example.toml", environ={}))
    store = store_of(db, send_id, tmp_path)
    run_id = store.take_over(journals(tmp_path)).run_id
    claimed: list[list[str]] = []
    with db.session() as other_claim:
        other_claim.execute(select(Delivery.id).where(Delivery.email.in_(addresses[:2]))
                            .with_for_update())
        worker = threading.Thread(target=lambda: claimed.append(
            [c.recipient.email for c in store.step(run_id, [], 10, idle=False).claimed]))
        worker.start()
        worker.join(timeout=30)  # returns at once unless the claim waits for the lock
        waited = worker.is_alive()
    worker.join()
    assert not waited
    assert claimed == [addresses[2:]]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite: one run
def test_a_paced_run_counts_the_runs_alive_and_an_unpaced_one_does_not(
        db: Database, tmp_path: Path) -> None:
    """A run that keeps a rate shares it among the runs alive, counted at each claim; a
    run without one (the default) has nothing to share, and does not ask."""
    audience(db, tmp_path, 4)
    send_id = start(db, load_settings(ROOT / "config.example.toml", environ={}))
    others = [ProcessLock(db, f"send-{send_id}", shared=True) for _ in range(2)]
    try:
        for number, lock in enumerate(others):
            lock.acquire()
            assert lock.hold_run(f"other-run-{number}") is not None
        paced = SqlStore(db, send_id, retry_delays=[60], hourly_cap=0,
                         intake=tmp_path / "intake")
        unpaced = SqlStore(db, send_id, retry_delays=[60], hourly_cap=0,
                           intake=tmp_path / "intake", paced=False)
        run_id = paced.take_over(journals(tmp_path)).run_id
        assert paced.step(run_id, [], 1, idle=False).runs == 2
        run_id = unpaced.take_over(journals(tmp_path)).run_id
        assert unpaced.step(run_id, [], 1, idle=False).runs == 1
    finally:
        for lock in others:
            lock.release()
