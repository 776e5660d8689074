"""VERP end to end: the envelope sender an SMTP server sees names each message's contact
and send, and a bounce that came back to it is recorded against them, even when it
quotes nothing of the message."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path

import pytest

from citesmail.tokens import make_return_token, read_return_token
from tests.conftest import REPLAY, SECRET, run
from tests.delivery.test_bounces import deliveries, report, statuses
from tests.smtp_server import SmtpServer

CONTACTS = ["anne.dupont@example.net", "bruno.martin@example.com",
            "chloe.bernard@example.fr"]
SHAPE = "rebonds+{token}@lettres.example.org"


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as running:
        yield running


@pytest.fixture
def env(workspace: Path, db_url: str, server: SmtpServer) -> dict[str, str]:
    """The replay sent over SMTP with VERP to CONTACTS (ids 1 to 3)."""
    env = {"CITESMAIL_DATABASE_URL": f'"{db_url}"', "CITESMAIL_SECRET": SECRET,
           "CITESMAIL_DELIVERY_TRANSPORT": "smtp", "CITESMAIL_SMTP_HOST": "127.0.0.1",
           "CITESMAIL_SMTP_PORT": str(server.port), "CITESMAIL_SMTP_SECURITY": "none",
           "CITESMAIL_DELIVERY_RETURN_PATH": SHAPE}
    (workspace / "c.csv").write_text("email\n" + "\n".join(CONTACTS) + "\n", encoding="utf-8")
    for command in (["lists", "add", "aura"], ["contacts", "import", "c.csv", "--list", "aura"],
                    ["segments", "add", "partenaires-aura", "--list", "aura"],
                    ["send", REPLAY, "--yes"]):
        result = run(*command, env=env)
        assert result.exit_code == 0, result.output
    return env


def verp(contact_id: int, send_id: int = 1) -> str:
    return SHAPE.replace("{token}", make_return_token(SECRET, contact_id, send_id))


def test_each_message_goes_with_an_envelope_sender_naming_its_contact_and_send(
        env: dict[str, str], server: SmtpServer) -> None:
    senders = server.handler.senders
    assert len(senders) == len(CONTACTS)
    named = set()
    for sender in senders:
        local, _, domain = sender.partition("@")
        assert domain == "lettres.example.org" and local.startswith("rebonds+")
        assert len(local) <= 64
        named.add(read_return_token(SECRET, local.removeprefix("rebonds+")))
    assert named == {(1, 1), (2, 1), (3, 1)}
    # The receiving server writes Return-Path; the message itself does not carry one.
    assert not any(b"\r\nReturn-Path:" in m or m.startswith(b"Return-Path:")
                   for m in server.handler.messages)


def test_a_test_message_names_its_contact_and_no_send(env: dict[str, str],
                                                      server: SmtpServer) -> None:
    sent = run("send", REPLAY, "--test", "moi@example.org", env=env)
    assert sent.exit_code == 0, sent.output
    local = server.handler.senders[-1].partition("@")[0]
    assert read_return_token(SECRET, local.removeprefix("rebonds+")) == (0, 0)


def bounce(to: str, failed: str) -> bytes:
    """A delivery status notification that quotes nothing of the message it returns:
    no headers, no Message-ID, only the address it failed at."""
    return (f"Return-Path: <>\nDelivered-To: {to}\nTo: {to}\n"
            "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n"
            "Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
            "--b\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
            "--b\nContent-Type: message/delivery-status\n\n"
            "Reporting-MTA: dns; mx.example.net\n\n"
            f"Final-Recipient: rfc822; {failed}\nAction: failed\nStatus: 5.1.1\n"
            f"Diagnostic-Code: smtp; 550 5.1.1 <{failed}>: User unknown\n\n"
            "--b--\n").encode()


def import_one(tmp_path: Path, env: dict[str, str], data: bytes) -> dict[str, str]:
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    box.add(data)
    box.close()
    result = run("bounces", "import", str(tmp_path / "bounces.mbox"), env=env)
    assert result.exit_code == 0, result.output
    return report(result.stdout)


def test_a_bounce_that_quotes_nothing_is_linked_by_its_return_path(
        env: dict[str, str], db_url: str, tmp_path: Path) -> None:
    counts = import_one(tmp_path, env, bounce(verp(2), CONTACTS[1]))
    assert counts["linked to campaigns"] == f"{REPLAY} 1"
    assert statuses(db_url)[CONTACTS[1]] == "bounced"
    assert deliveries(db_url)[CONTACTS[1]][0] == "failed"
    assert {deliveries(db_url)[a][0] for a in (CONTACTS[0], CONTACTS[2])} == {"sent"}


def test_a_forwarded_address_bouncing_is_recorded_against_the_contact_its_token_names(
        env: dict[str, str], db_url: str, tmp_path: Path) -> None:
    counts = import_one(tmp_path, env, bounce(verp(3).upper(), "c.bernard@forward.example"))
    assert (counts["unknown addresses"], counts["linked to campaigns"]) == ("0", f"{REPLAY} 1")
    assert statuses(db_url)[CONTACTS[2]] == "bounced"
    assert deliveries(db_url)[CONTACTS[2]][0] == "failed"


@pytest.mark.parametrize("to", [
    verp(3).replace("rebonds+3-", "rebonds+2-"),  # another contact, the tag of contact 3
    SHAPE.replace("{token}", make_return_token("another-secret-of-more-than-32-bytes", 3, 1)),
], ids=["altered", "other secret"])
def test_a_forged_token_is_ignored(env: dict[str, str], db_url: str, tmp_path: Path,
                                   to: str) -> None:
    counts = import_one(tmp_path, env, bounce(to, "c.bernard@forward.example"))
    assert (counts["unknown addresses"], counts["linked to campaigns"]) == ("1", "none")
    assert set(statuses(db_url).values()) == {"active"}
    # The failing address is a contact's: matched by address as without VERP, unlinked.
    (tmp_path / "again").mkdir()
    counts = import_one(tmp_path / "again", env, bounce(to, CONTACTS[0]))
    assert counts["linked to campaigns"] == "none"
    assert statuses(db_url)[CONTACTS[0]] == "bounced"
    assert deliveries(db_url)[CONTACTS[0]][0] == "sent"
