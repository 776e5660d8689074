"""citesmail bounces import, with DSN samples in the formats mail servers really send."""

from __future__ import annotations

import email
import mailbox
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flufl.bounce import all_failures
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from citesmail.campaigns.models import SLUG
from citesmail.db import ConsentEvent, Contact, Delivery, Send, open_database
from citesmail.delivery import bounces
from citesmail.delivery.dsn import find_origin, read_bounce, scan
from citesmail.message import Origin, message_id, parse_message_id
from tests.conftest import REPLAY, run

SAMPLES = Path(__file__).resolve().parent / "bounce_samples"
CITESMAIL = Path(sys.executable).parent / "citesmail"

# Imported in this order, so contact ids 1 to 7: the ids the samples' Message-IDs carry.
CONTACTS = ["anne.dupont@example.net", "bruno.martin@example.com",
            "chloe.bernard@example.fr", "david.petit@mairie-exemple.fr",
            "emma.robert@example.com", "anne-sophie.garnier@example.net",
            "farid.benali@example.org"]
BOUNCED = CONTACTS[:4]
DIAGNOSTICS = {
    "anne.dupont@example.net": "550 5.1.1 <anne.dupont@example.net>... User unknown",
    "bruno.martin@example.com": "550 5.1.1 <bruno.martin@example.com>: Recipient address "
                                "rejected: User unknown in virtual mailbox table",
    "chloe.bernard@example.fr": "550 5.1.1 <chloe.bernard@example.fr>: Recipient address "
                                "rejected: User unknown in local recipient table",
    "david.petit@mairie-exemple.fr": "550 5.1.10 RESOLVER.ADR.RecipientNotFound; "
                                     "Recipient not found by SMTP address lookup",
}
GMAIL_DIAGNOSTIC = (
    "550-5.1.1 The email account that you tried to reach does not exist. Please try "
    "double-checking the recipient's email address for typos or unnecessary spaces. "
    "https://support.google.com/mail/?p=NoSuchUser "
    "a1-20020a5d4d41000000b0030fd03e3d25si1234567wru.321 - gsmtp")
# A Maildir file cut short while it was written: no From header at all.
TRUNCATED = (b"Received: from mx.example.net (mx.example.net [203.0.113.25])\n"
             b"\tby mail.example.org (Postfix) with ESMTPS id 4QgH6")


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def parsed(name: str) -> email.message.Message:
    return email.message_from_bytes(sample(name))


# (sample, temporary failures, permanent failures) exactly as flufl.bounce returns them,
# then what read_bounce makes of it: the origin (contact id) and the diagnostic.
DETECTED = [
    ("rfc3464-sendmail-user-unknown.eml", set(), {b"anne.dupont@example.net"}, 1,
     DIAGNOSTICS["anne.dupont@example.net"]),
    ("postfix-mailbox-unknown.eml", set(), {b"bruno.martin@example.com"}, 2,
     DIAGNOSTICS["bruno.martin@example.com"]),
    ("exim-permanent-error.eml", set(), {b"chloe.bernard@example.fr"}, 3,
     DIAGNOSTICS["chloe.bernard@example.fr"]),
    ("microsoft-exchange-ndr.eml", set(), {b"David.Petit@mairie-exemple.fr"}, 4,
     DIAGNOSTICS["david.petit@mairie-exemple.fr"]),
    ("postfix-delayed-warning.eml", {b"emma.robert@example.com"}, set(), 5, None),
    ("gmail-unknown-address.eml", set(), {b"ancien.charge-de-mission@example.com"}, None,
     GMAIL_DIAGNOSTIC),
]


@pytest.mark.parametrize(("name", "temporary", "permanent", "contact_id", "diagnostic"),
                         DETECTED)
def test_each_sample_is_detected_as_claimed(name: str, temporary: set[bytes],
                                            permanent: set[bytes], contact_id: int | None,
                                            diagnostic: str | None) -> None:
    assert all_failures(parsed(name)) == (temporary, permanent)
    bounce = read_bounce(parsed(name))
    assert bounce is not None
    assert bounce.temporary == tuple(a.decode() for a in temporary)
    assert [f.address for f in bounce.permanent] == [a.decode() for a in permanent]
    assert [f.diagnostic for f in bounce.permanent] == ([diagnostic] if permanent else [])
    assert [f.reply_code for f in bounce.permanent] == ([550] if permanent else [])
    expected = None if contact_id is None else Origin(REPLAY, contact_id)
    assert bounce.origin == expected


def test_an_out_of_office_reply_is_not_a_bounce() -> None:
    assert all_failures(parsed("out-of-office-reply.eml")) == (set(), set())
    assert read_bounce(parsed("out-of-office-reply.eml")) is None


def test_message_ids_citesmail_writes_and_others() -> None:
    assert parse_message_id(f"<{REPLAY}.42.0123456789abcdef@example.org>") == \
        Origin(REPLAY, 42)
    assert parse_message_id("<lettre-2.7.fedcba9876543210@lettres.example.org>") == \
        Origin("lettre-2", 7)
    assert parse_message_id(f"<{REPLAY}.42.be30996feb6a1f@example.org>") == \
        Origin(REPLAY, 42)
    assert parse_message_id(f"<{REPLAY}.42.0123456789abcdeg@example.org>") is None
    assert parse_message_id(f"<{REPLAY}.42.@example.org>") is None
    assert parse_message_id(f"<{REPLAY}.x.0123456789abcdef@example.org>") is None
    assert parse_message_id("<CAF3k9vT2eXq8m1p@mail.example.org>") is None
    assert parse_message_id(f"{REPLAY}.42.0123456789abcdef@example.org") is None  # no <>


@given(slug=st.from_regex(SLUG, fullmatch=True), contact_id=st.integers(0, 10**12),
       unique=st.from_regex(r"[0-9a-f]{1,20}", fullmatch=True))
def test_every_valid_slug_is_read_back_from_the_message_ids_written_for_it(
        slug: str, contact_id: int, unique: str) -> None:
    written = message_id(slug, contact_id, unique, "lettres.example.org")
    assert parse_message_id(written) == Origin(slug, contact_id)


def test_the_origin_from_in_reply_to_or_an_original_message_id_field() -> None:
    replying = email.message_from_string(
        "From: MAILER-DAEMON@mx.example.net\n"
        "In-Reply-To: <x@y.example>\n"
        f"References: <x@y.example> <{REPLAY}.9.00112233445566ff@example.org>\n\n"
        "Your message was not delivered.\n")
    assert find_origin(replying) == Origin(REPLAY, 9)
    reported = email.message_from_string(
        "From: MAILER-DAEMON@mx.example.net\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
        "--b\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.net\n"
        f"X-Original-Message-ID: <{REPLAY}.11.aabbccddeeff0011@example.org>\n\n"
        "Final-Recipient: rfc822; someone@example.net\nAction: failed\nStatus: 5.1.1\n"
        "--b--\n")
    assert find_origin(reported) == Origin(REPLAY, 11)
    assert read_bounce(reported) is not None
    assert find_origin(email.message_from_string("Subject: hello\n\nMessage-ID: <a@b>\n")) \
        is None


# End to end: contacts, a real send to the outbox, then the bounces.

@pytest.fixture
def env(workspace: Path, db_url: str) -> dict[str, str]:
    """The replay sent (to the outbox) to CONTACTS, on SQLite or PostgreSQL."""
    env = {"CITESMAIL_DATABASE_URL": f'"{db_url}"'}
    (workspace / "c.csv").write_text("email\n" + "\n".join(CONTACTS) + "\n", encoding="utf-8")
    for command in (["lists", "add", "aura"], ["contacts", "import", "c.csv", "--list", "aura"],
                    ["segments", "add", "partenaires-aura", "--list", "aura"],
                    ["send", REPLAY, "--yes"]):
        result = run(*command, env=env)
        assert result.exit_code == 0, result.output
    ids = {email: cid for cid, email, _, _ in snapshot(db_url)["contacts"]}
    assert ids == {email: n for n, email in enumerate(CONTACTS, start=1)}, \
        "the samples' Message-IDs name these contact ids"
    return env


def snapshot(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every contact and every row of the send log, as stored."""
    db = open_database(db_url)
    try:
        with db.session(write=False) as session:
            contacts = session.execute(select(Contact.id, Contact.email, Contact.status,
                                              Contact.updated_at).order_by(Contact.id))
            log = session.execute(select(Delivery.email, Delivery.state, Delivery.last_code,
                                         Delivery.last_error, Delivery.updated_at)
                                  .order_by(Delivery.id))
            return {"contacts": [tuple(row) for row in contacts],
                    "deliveries": [tuple(row) for row in log]}
    finally:
        db.close()


def bounce_campaigns(db_url: str) -> dict[str, str | None]:
    """Each bounce event's contact and the campaign it names."""
    db = open_database(db_url)
    try:
        with db.session(write=False) as session:
            rows = session.execute(
                select(Contact.email, ConsentEvent.campaign)
                .join(ConsentEvent, ConsentEvent.contact_id == Contact.id)
                .where(ConsentEvent.kind == "bounce"))
            return {email: campaign for email, campaign in rows}
    finally:
        db.close()


def statuses(db_url: str) -> dict[str, str]:
    return {email: status for _, email, status, _ in snapshot(db_url)["contacts"]}


def deliveries(db_url: str) -> dict[str, tuple[str, int | None, str | None]]:
    return {email: (state, code, error)
            for email, state, code, error, _ in snapshot(db_url)["deliveries"]}


def sample_names() -> list[str]:
    return sorted(path.name for path in SAMPLES.glob("*.eml"))


def make_mbox(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.mbox(path)
    for data in messages:
        box.add(data)
    box.close()
    return path


def make_maildir(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(path)
    for data in messages:
        box.add(data)
    return path


COUNTS = ("messages read", "permanent failures", "temporary failures", "not a bounce",
          "unreadable", "contacts marked bounced", "already bounced",
          "not active, left as is", "refused, contact kept", "unknown addresses",
          "deliveries marked failed",
          "linked to campaigns")


def report(output: str) -> dict[str, str]:
    """The counts of a report, which come first, one per line."""
    lines = output.splitlines()
    assert [line.partition(":")[0] for line in lines[:len(COUNTS)]] == list(COUNTS)
    return {name: line.partition(":")[2].strip() for name, line in zip(COUNTS, lines,
                                                                         strict=False)}


def test_import_an_mbox_twice(env: dict[str, str], db_url: str, tmp_path: Path,
                              workspace: Path) -> None:
    outbox = mailbox.Maildir(workspace / "outbox", create=False)
    sent = [email.message_from_bytes(outbox.get_bytes(key)) for key in outbox.iterkeys()]
    ids = {m["To"].split("<")[-1].rstrip(">"): m["Message-ID"] for m in sent}
    # The Message-IDs message.py gives the messages it sends are understood.
    assert {address: parse_message_id(ids[address]) for address in CONTACTS} == \
        {address: Origin(REPLAY, n) for n, address in enumerate(CONTACTS, start=1)}

    path = make_mbox(tmp_path / "bounces.mbox", [sample(n) for n in sample_names()])
    before = snapshot(db_url)
    first = run("bounces", "import", str(path), env=env)
    assert first.exit_code == 0, first.output
    assert report(first.stdout) == {
        "messages read": "7", "permanent failures": "5", "temporary failures": "1",
        "not a bounce": "1", "unreadable": "0", "contacts marked bounced": "4",
        "already bounced": "0", "not active, left as is": "0", "refused, contact kept": "0",
        "unknown addresses": "1",
        "deliveries marked failed": "4", "linked to campaigns": f"{REPLAY} 4"}
    for address in BOUNCED:
        assert f"{address}: bounced, campaign {REPLAY}" in first.stdout.splitlines()
    assert "ancien.charge-de-mission@example.com: unknown address" in first.stdout

    assert statuses(db_url) == {**dict.fromkeys(CONTACTS, "active"),
                                **dict.fromkeys(BOUNCED, "bounced")}
    assert bounce_campaigns(db_url) == dict.fromkeys(BOUNCED, REPLAY)
    after = deliveries(db_url)
    for address in CONTACTS:
        if address in BOUNCED:
            assert after[address] == ("failed", 550, f"bounce report: {DIAGNOSTICS[address]}")
        else:
            assert after[address][::2] == ("sent", None), address  # (state, error)
    old_times = {row[1]: row[3] for row in before["contacts"]}
    for _, address, _, updated in snapshot(db_url)["contacts"]:
        assert (updated > old_times[address]) == (address in BOUNCED), address

    first_state = snapshot(db_url)
    second = run("bounces", "import", str(path), env=env)
    assert second.exit_code == 0, second.output
    counts = report(second.stdout)
    assert counts["contacts marked bounced"] == "0"
    assert counts["already bounced"] == "4"
    assert counts["deliveries marked failed"] == "0"
    assert f"chloe.bernard@example.fr: already bounced, campaign {REPLAY}" in second.stdout
    assert "nothing changed: these bounces were already imported" in second.stdout
    assert snapshot(db_url) == first_state


def test_a_maildir_dry_run_then_for_real(env: dict[str, str], db_url: str,
                                         tmp_path: Path) -> None:
    assert run("contacts", "unsubscribe", "chloe.bernard@example.fr", env=env).exit_code == 0
    path = make_maildir(tmp_path / "Maildir", [sample(n) for n in sample_names()])
    before = snapshot(db_url)
    dry = run("bounces", "import", str(path), "--dry-run", env=env)
    assert dry.exit_code == 0, dry.output
    assert report(dry.stdout)["contacts marked bounced"] == "3"
    assert dry.stdout.rstrip().endswith("dry run: nothing was changed")
    assert snapshot(db_url) == before

    real = run("bounces", "import", str(path), env=env)
    assert real.exit_code == 0, real.output
    counts = report(real.stdout)
    assert (counts["messages read"], counts["contacts marked bounced"],
            counts["not active, left as is"], counts["deliveries marked failed"]) == \
        ("7", "3", "1", "4")
    assert "chloe.bernard@example.fr: unsubscribed, left as is" in real.stdout
    assert statuses(db_url)["chloe.bernard@example.fr"] == "unsubscribed"
    assert statuses(db_url)["emma.robert@example.com"] == "active"  # delayed: counted only
    assert deliveries(db_url)["chloe.bernard@example.fr"][0] == "failed"
    assert deliveries(db_url)["emma.robert@example.com"][::2] == ("sent", None)


def test_a_malformed_message_is_named_and_the_others_are_imported(
        env: dict[str, str], db_url: str, tmp_path: Path, workspace: Path) -> None:
    with pytest.raises(IndexError):  # flufl.bounce 6.0 fails on a message without From
        all_failures(email.message_from_bytes(TRUNCATED))
    path = make_mbox(tmp_path / "bounces.mbox", [
        sample("exim-permanent-error.eml"), TRUNCATED, sample("microsoft-exchange-ndr.eml")])
    # The installed command, so that nothing (such as pytest's logging) hides a traceback.
    result = subprocess.run([str(CITESMAIL), "bounces", "import", str(path)], cwd=workspace,
                            env={**os.environ, **env}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    counts = report(result.stdout)
    assert (counts["messages read"], counts["unreadable"], counts["contacts marked bounced"]) \
        == ("3", "1", "2")
    assert ("mbox message 2: unreadable, cannot be scanned (IndexError: list index out of "
            "range)") in result.stdout.splitlines()
    assert statuses(db_url)["chloe.bernard@example.fr"] == "bounced"
    assert statuses(db_url)["david.petit@mairie-exemple.fr"] == "bounced"


def test_a_bounce_for_another_contacts_message_is_not_linked(
        env: dict[str, str], db_url: str, tmp_path: Path) -> None:
    # Anne's address fails, but the Message-ID names the message sent to contact 2.
    data = sample("rfc3464-sendmail-user-unknown.eml").replace(
        f"<{REPLAY}.1.".encode(), f"<{REPLAY}.2.".encode())
    path = make_mbox(tmp_path / "bounces.mbox", [data])
    result = run("bounces", "import", str(path), env=env)
    assert result.exit_code == 0, result.output
    assert "anne.dupont@example.net: bounced, no campaign matched" in result.stdout
    assert report(result.stdout)["linked to campaigns"] == "none"
    assert bounce_campaigns(db_url) == {"anne.dupont@example.net": None}
    assert {row[::2] for row in deliveries(db_url).values()} == {("sent", None)}
    assert statuses(db_url)["anne.dupont@example.net"] == "bounced"


def test_a_bounce_for_a_campaign_whose_slug_has_an_underscore_is_linked(
        env: dict[str, str], db_url: str, tmp_path: Path, workspace: Path) -> None:
    # A valid campaign file name with '_': its Message-IDs must be read back as its own.
    slug = "2023-06_replay_emploi"
    shutil.copy(workspace / "campaigns" / f"{REPLAY}.md", workspace / "campaigns" / f"{slug}.md")
    sent = run("send", slug, "--yes", env=env)
    assert sent.exit_code == 0, sent.output
    outbox = mailbox.Maildir(workspace / "outbox", create=False)
    [written] = [m["Message-ID"] for m in map(email.message_from_bytes,
                                              map(outbox.get_bytes, outbox.iterkeys()))
                 if m["To"] == "anne.dupont@example.net" and f"<{slug}." in m["Message-ID"]]
    assert parse_message_id(written) == Origin(slug, 1)
    # Anne's bounce, about the message of this campaign.
    data = re.sub(rb"<" + REPLAY.encode() + rb"\.1\.[0-9a-f]+@example\.org>", written.encode(),
                  sample("rfc3464-sendmail-user-unknown.eml"))
    assert written.encode() in data
    result = run("bounces", "import", str(make_mbox(tmp_path / "b.mbox", [data])), env=env)
    assert result.exit_code == 0, result.output
    assert report(result.stdout)["linked to campaigns"] == f"{slug} 1"
    assert f"anne.dupont@example.net: bounced, campaign {slug}" in result.stdout
    assert campaign_states(db_url, slug)["anne.dupont@example.net"] == "failed"
    assert set(campaign_states(db_url, REPLAY).values()) == {"sent"}


def campaign_states(db_url: str, slug: str) -> dict[str, str]:
    """The state of each delivery of one campaign's send."""
    db = open_database(db_url)
    try:
        with db.session(write=False) as session:
            rows = session.execute(select(Delivery.email, Delivery.state).join(
                Send, Send.id == Delivery.send_id).where(Send.campaign == slug))
            return {email: state for email, state in rows}
    finally:
        db.close()


def test_a_refusal_by_policy_fails_the_message_and_keeps_the_contact(
        env: dict[str, str], db_url: str, tmp_path: Path) -> None:
    # Bruno's message was refused by a spam filter (the relay's address was blocked).
    data = sample("postfix-mailbox-unknown.eml").replace(b"Status: 5.1.1", b"Status: 5.7.1")
    data = data.replace(b"550 5.1.1 <bruno.martin@example.com>: Recipient address",
                        b"550 5.7.1 Service unavailable; client host blocked using a list:")
    path = make_mbox(tmp_path / "bounces.mbox", [data])
    result = run("bounces", "import", str(path), env=env)
    assert result.exit_code == 0, result.output
    counts = report(result.stdout)
    assert (counts["contacts marked bounced"], counts["refused, contact kept"],
            counts["deliveries marked failed"]) == ("0", "1", "1")
    assert "bruno.martin@example.com: refused (5.7.1: policy, spam filter or network), " \
           "contact kept" in result.stdout
    assert statuses(db_url)["bruno.martin@example.com"] == "active"
    state, code, error = deliveries(db_url)["bruno.martin@example.com"]
    assert (state, code) == ("failed", 550) and error and "blocked" in error


def test_a_bounce_from_a_forwarded_address_finds_the_contact_by_message_id(
        env: dict[str, str], db_url: str, tmp_path: Path) -> None:
    # Bruno forwards his mail; the address that failed is the one he forwards to.
    data = sample("postfix-mailbox-unknown.eml").replace(
        b"bruno.martin@example.com", b"bmartin@forward.example")
    path = make_mbox(tmp_path / "bounces.mbox", [data])
    result = run("bounces", "import", str(path), env=env)
    assert result.exit_code == 0, result.output
    assert report(result.stdout)["unknown addresses"] == "0"
    assert f"bruno.martin@example.com: bounced, campaign {REPLAY}" in result.stdout
    assert statuses(db_url)["bruno.martin@example.com"] == "bounced"
    assert deliveries(db_url)["bruno.martin@example.com"][0] == "failed"


def test_a_failure_half_way_leaves_nothing_changed(env: dict[str, str], db_url: str,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    record = bounces.BounceRecorder.permanent
    calls = []

    def failing_on_the_third(self: Any, failure: Any, origin: Any, **options: Any) -> None:
        calls.append(failure.address)
        if len(calls) == 3:
            raise RuntimeError("the database went away")
        record(self, failure, origin, **options)

    monkeypatch.setattr(bounces.BounceRecorder, "permanent", failing_on_the_third)
    path = make_mbox(tmp_path / "bounces.mbox", [sample(n) for n in sample_names()])
    before = snapshot(db_url)
    db = open_database(db_url)
    try:
        with pytest.raises(RuntimeError):
            bounces.import_bounces(db, path)
    finally:
        db.close()
    assert len(calls) == 3
    assert snapshot(db_url) == before


@pytest.mark.parametrize(("kind", "message"), [
    ("missing", "no such file or folder"),
    ("text", "not an mbox file: it does not begin with a 'From ' line"),
    ("folder", "a folder, but not a Maildir: it has no cur/, new/ and tmp/"),
])
def test_what_is_neither_an_mbox_nor_a_maildir_is_a_one_line_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / kind
    if kind == "text":
        path.write_text("Bonjour,\nrien à voir.\n", encoding="utf-8")
    elif kind == "folder":
        (path / "new").mkdir(parents=True)
    result = run("bounces", "import", kind,
                 env={"CITESMAIL_DATABASE_URL": f'"sqlite:///{tmp_path}/c.db"'})
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{kind}: error: {message} — give an mbox file or a Maildir folder (with cur/, new/ "
        "and tmp/)" + ("; to read single .eml files, put them in a Maildir's new/ folder"
                       if kind == "text" else "")]


def test_an_empty_mbox_reads_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty.mbox").write_bytes(b"")
    found = scan(tmp_path / "empty.mbox")
    assert (found.messages, found.bounces, found.unreadable) == (0, [], [])


def test_help_texts() -> None:
    assert "bounce messages" in run("bounces", "--help").stdout
    shown = run("bounces", "import", "--help").stdout
    assert "mbox file or a Maildir folder" in shown and "--dry-run" in shown
