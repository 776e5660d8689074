"""A workspace that sent the replay (to its outbox) to seven contacts, with a mailto:
unsubscribe address, on SQLite or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPLAY, run
from tests.delivery.test_bounces import CONTACTS, snapshot
from tests.inbox.returns import MAILTO, returns, sent_messages


@pytest.fixture
def sent_env(workspace: Path, db_url: str) -> dict[str, str]:
    env = {"CITESMAIL_DATABASE_URL": f'"{db_url}"', "CITESMAIL_UNSUBSCRIBE_MAILTO": MAILTO}
    (workspace / "c.csv").write_text("email\n" + "\n".join(CONTACTS) + "\n", encoding="utf-8")
    for command in (["lists", "add", "aura"], ["contacts", "import", "c.csv", "--list", "aura"],
                    ["segments", "add", "partenaires-aura", "--list", "aura"],
                    ["send", REPLAY, "--yes"]):
        result = run(*command, env=env)
        assert result.exit_code == 0, result.output
    ids = {email: cid for cid, email, _, _ in snapshot(db_url)["contacts"]}
    assert ids == {email: n for n, email in enumerate(CONTACTS, start=1)}, \
        "the DSN sample's Message-ID names contact 1"
    return env


@pytest.fixture
def returned(sent_env: dict[str, str], workspace: Path) -> dict[str, bytes]:
    """One message of each kind (tests/inbox/returns.py), about the messages sent."""
    return returns(sent_messages(workspace / "outbox"))
