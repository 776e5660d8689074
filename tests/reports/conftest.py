"""A campaign really sent over SMTP (aiosmtpd on 127.0.0.1) to eleven people, with
refusals, a retry and a message still deferred; then what came back (bounces, complaints,
unsubscribe requests) imported from the inbox: on SQLite and PostgreSQL."""

from __future__ import annotations

import email
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from citesmail.db import Database, open_database
from tests.cli.test_delivery_commands import smtp_env
from tests.conftest import REPLAY, run
from tests.delivery.test_bounces import CONTACTS, make_mbox, sample, snapshot
from tests.inbox.returns import MAILTO, returns
from tests.smtp_server import SmtpServer

REFUSED = "refus@example.org"  # 550 at RCPT: the address does not exist (contact bounced)
SPAM = "politique@example.org"  # 554 5.7.1 at DATA: refused as spam (contact kept)
FULL = "plein@example.org"  # 452 twice: still deferred
SLOW = "lent@example.org"  # 451 once, then accepted
EXTRA = [REFUSED, SPAM, FULL, SLOW]
POLICY_BOUNCED = "anne-sophie.garnier@example.net"  # contact 6: a DSN refusing by policy
RETURNED = ["dsn", "arf-yahoo", "jmrp", "mailto", "reply-unsubscribe"]


@dataclass
class Sent:
    env: dict[str, str]
    db: Database
    server: SmtpServer


def messages_by_recipient(server: SmtpServer) -> dict[str, bytes]:
    found = {}
    for data in server.handler.messages:
        to = email.message_from_bytes(data)["To"]
        found[to.split("<")[-1].rstrip(">").lower()] = data
    return found


def policy_dsn() -> bytes:
    """Postfix's notification, about contact 6's message, refused by a blocklist."""
    data = sample("postfix-mailbox-unknown.eml").replace(b"Status: 5.1.1", b"Status: 5.7.1")
    data = data.replace(b"550 5.1.1 <bruno.martin@example.com>: Recipient address",
                        b"550 5.7.1 Service unavailable; client host blocked using a list:")
    data = data.replace(b"bruno.martin@example.com", POLICY_BOUNCED.encode())
    return data.replace(f"<{REPLAY}.2.".encode(), f"<{REPLAY}.6.".encode())


@pytest.fixture
def sent(workspace: Path, db_url: str, tmp_path: Path) -> Iterator[Sent]:
    with SmtpServer() as server:
        env = smtp_env(server.port, CITESMAIL_DATABASE_URL=f'"{db_url}"',
                       CITESMAIL_UNSUBSCRIBE_MAILTO=MAILTO,
                       CITESMAIL_DELIVERY_RETRY_DELAYS="[1, 900]")
        addresses = CONTACTS + EXTRA
        (workspace / "c.csv").write_text("email\n" + "\n".join(addresses) + "\n",
                                         encoding="utf-8")
        for command in (["lists", "add", "aura"],
                        ["contacts", "import", "c.csv", "--list", "aura"],
                        ["segments", "add", "partenaires-aura", "--list", "aura"]):
            assert run(*command, env=env).exit_code == 0
        ids = {address: cid for cid, address, _, _ in snapshot(db_url)["contacts"]}
        assert [ids[address] for address in CONTACTS] == [1, 2, 3, 4, 5, 6, 7]
        handler = server.handler
        handler.at_rcpt[REFUSED] = [550]
        handler.at_data[SPAM] = ["554 5.7.1 Message refused as spam"]
        handler.at_rcpt[FULL] = [452, 452]
        handler.at_rcpt[SLOW] = [451]
        result = run("send", REPLAY, "--yes", env=env)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == "sent 8, deferred 1, failed 2"
        back = returns(messages_by_recipient(server))
        box = make_mbox(tmp_path / "retours.mbox",
                        [back[name] for name in RETURNED] + [policy_dsn()])
        imported = run("inbox", "import", str(box), env=env)
        assert imported.exit_code == 0, imported.output
        db = open_database(db_url)
        try:
            yield Sent(env, db, server)
        finally:
            db.close()
