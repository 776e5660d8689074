"""citesmail inbox import: an mbox file, a Maildir folder, one .eml file, after a real
send, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import select

from citesmail.audience.consent import history
from citesmail.db import ConsentEvent, Contact, open_database
from tests.conftest import REPLAY, run
from tests.delivery.test_bounces import deliveries, make_maildir, make_mbox, snapshot, statuses
from tests.inbox.returns import HANDLED, LEFT_ALONE, STATUSES

COUNTS = ("messages read", "bounces", "complaint reports", "unsubscribe requests",
          "auto-replies, ignored", "other mail, left alone", "unreadable",
          "contacts marked bounced", "contacts complained", "contacts unsubscribed",
          "deliveries marked failed", "deliveries noted")
FIRST_RUN = {"messages read": "9", "bounces": "1", "complaint reports": "2",
             "unsubscribe requests": "3", "auto-replies, ignored": "2",
             "other mail, left alone": "1", "unreadable": "0", "contacts marked bounced": "1",
             "contacts complained": "2", "contacts unsubscribed": "2",
             "deliveries marked failed": "1", "deliveries noted": "2"}


def counts(output: str) -> dict[str, str]:
    """The counts a report begins with."""
    lines = output.splitlines()
    assert [line.partition(":")[0] for line in lines[:len(COUNTS)]] == list(COUNTS), output
    return {name: line.partition(":")[2].strip() for name, line in zip(COUNTS, lines,
                                                                         strict=False)}


def check_first_run(output: str, db_url: str) -> None:
    assert counts(output) == FIRST_RUN
    lines = output.splitlines()
    for line in (f"anne.dupont@example.net: bounced, campaign {REPLAY}",
                 f"bruno.martin@example.com: complained, campaign {REPLAY}",
                 f"chloe.bernard@example.fr: complained, campaign {REPLAY}",
                 f"david.petit@mairie-exemple.fr: unsubscribed, campaign {REPLAY}",
                 f"emma.robert@example.com: unsubscribed, campaign {REPLAY}"):
        assert line in lines, output
    assert any("left alone, a reply asking to unsubscribe, from quelquun@example.com, not "
               "farid.benali@example.org the message went to" in line for line in lines)
    assert statuses(db_url) == STATUSES
    assert last_events(db_url) == {
        "anne.dupont@example.net": ("bounce", "delivery status notification: 5.1.1"),
        "bruno.martin@example.com": ("complaint", "complaint report: "),
        "chloe.bernard@example.fr": ("complaint", "complaint report: "),
        "david.petit@mairie-exemple.fr": ("unsubscribe", "unsubscribe request: "),
        "emma.robert@example.com": ("unsubscribe", "unsubscribe request: ")}
    rows = deliveries(db_url)
    assert rows["anne.dupont@example.net"][0] == "failed"
    assert rows["bruno.martin@example.com"] == (
        "sent", 250, "complaint report: abuse (Yahoo!-Mail-Feedback/2.0)")
    assert rows["chloe.bernard@example.fr"] == (
        "sent", 250, "complaint report: abuse (Microsoft JMRP)")
    for address in ("david.petit@mairie-exemple.fr", "emma.robert@example.com",
                    "farid.benali@example.org", "anne-sophie.garnier@example.net"):
        assert rows[address] == ("sent", 250, None), address


def last_events(db_url: str) -> dict[str, tuple[str, str]]:
    """The latest consent event of each contact that left: its kind and the start of its
    source (the rest names the message, which depends on the mailbox)."""
    db = open_database(db_url)
    with db.session(write=False) as session:
        found = {}
        for contact in session.scalars(select(Contact).where(Contact.status != "active")):
            event = history(session, contact.id)[-1]
            start = len("delivery status notification: 5.1.1") if event.kind == "bounce" \
                else event.source.index(": ") + 2
            found[contact.email] = (event.kind, event.source[:start])
    db.close()
    return found


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_mbox_is_read_acted_on_and_never_changed(
        sent_env: dict[str, str], returned: dict[str, bytes], db_url: str,
        tmp_path: Path) -> None:
    path = make_mbox(tmp_path / "retours.mbox", list(returned.values()))
    before = digest(path)
    first = run("inbox", "import", str(path), env=sent_env)
    assert first.exit_code == 0, first.output
    check_first_run(first.stdout, db_url)
    assert "moved to" not in first.stdout  # an mbox is never changed
    assert digest(path) == before

    state = snapshot(db_url)
    second = run("inbox", "import", str(path), env=sent_env)
    assert second.exit_code == 0, second.output
    assert counts(second.stdout) | {"messages read": "9"} == {
        **FIRST_RUN, "contacts marked bounced": "0", "contacts complained": "0",
        "contacts unsubscribed": "0", "deliveries marked failed": "0",
        "deliveries noted": "0"}
    assert "bruno.martin@example.com: complained, left as is (complaint report)" in \
        second.stdout.splitlines()
    assert second.stdout.splitlines()[-1] == "nothing changed"
    assert snapshot(db_url) == state
    assert digest(path) == before


def test_a_maildir_dry_run_then_for_real_then_again(
        sent_env: dict[str, str], returned: dict[str, bytes], db_url: str,
        tmp_path: Path) -> None:
    path = make_maildir(tmp_path / "Maildir", list(returned.values()))
    files = {entry.name: entry.read_bytes() for entry in (path / "new").iterdir()}
    by_content = {data: name for name, data in returned.items()}
    before = snapshot(db_url)

    dry = run("inbox", "import", str(path), "--dry-run", env=sent_env)
    assert dry.exit_code == 0, dry.output
    assert counts(dry.stdout)["contacts complained"] == "2"
    assert "moved to .citesmail.processed/ of" in dry.stdout
    assert dry.stdout.splitlines()[-1] == "dry run: nothing was changed"
    assert snapshot(db_url) == before
    assert {entry.name: entry.read_bytes() for entry in (path / "new").iterdir()} == files

    real = run("inbox", "import", str(path), env=sent_env)
    assert real.exit_code == 0, real.output
    check_first_run(real.stdout, db_url)
    assert f"moved to .citesmail.processed/ of {path}: 7" in real.stdout.splitlines()
    processed = path / ".citesmail.processed"
    moved = {by_content[entry.read_bytes()]: entry.name
             for entry in (processed / "cur").iterdir()}
    assert set(moved) == HANDLED
    assert all(name.endswith(":2,S") for name in moved.values())
    kept = {by_content[entry.read_bytes()] for entry in (path / "new").iterdir()}
    assert kept == LEFT_ALONE  # a person's mail: where it was, unseen, unchanged
    assert not list((path / "cur").iterdir())

    state = snapshot(db_url)
    again = run("inbox", "import", str(path), env=sent_env)
    assert again.exit_code == 0, again.output
    found = counts(again.stdout)
    assert (found["messages read"], found["unsubscribe requests"],
            found["other mail, left alone"]) == ("2", "1", "1")
    assert again.stdout.splitlines()[-1] == "nothing changed"
    assert snapshot(db_url) == state
    assert {by_content[entry.read_bytes()] for entry in (path / "new").iterdir()} == LEFT_ALONE


def test_one_eml_file(sent_env: dict[str, str], returned: dict[str, bytes],
                      db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "plainte.eml"
    path.write_bytes(returned["arf-yahoo"])
    result = run("inbox", "import", str(path), env=sent_env)
    assert result.exit_code == 0, result.output
    assert counts(result.stdout)["contacts complained"] == "1"
    assert statuses(db_url)["bruno.martin@example.com"] == "complained"
    assert path.read_bytes() == returned["arf-yahoo"]


def test_a_folder_that_is_not_a_maildir_is_one_clear_line(sent_env: dict[str, str],
                                                           tmp_path: Path) -> None:
    result = run("inbox", "import", str(tmp_path), env=sent_env)
    assert result.exit_code != 0
    assert result.stderr.splitlines() == [
        f"{tmp_path}: error: a folder, but not a Maildir: it has no cur/, new/ and tmp/ — "
        "give an mbox file, a Maildir folder (with cur/, new/ and tmp/) or an .eml file"]


def departures(db_url: str) -> dict[str, tuple[str, str | None]]:
    """Each departure event (bounce, complaint, unsubscribe): its kind and its campaign."""
    db = open_database(db_url)
    with db.session(write=False) as session:
        rows = session.execute(
            select(Contact.email, ConsentEvent.kind, ConsentEvent.campaign)
            .join(ConsentEvent, ConsentEvent.contact_id == Contact.id)
            .where(ConsentEvent.kind.in_(["bounce", "complaint", "unsubscribe"])))
        found = {email: (kind, campaign) for email, kind, campaign in rows}
    db.close()
    return found


def test_each_departure_names_the_campaign_its_message_came_from(
        sent_env: dict[str, str], returned: dict[str, bytes], db_url: str,
        tmp_path: Path) -> None:
    path = make_mbox(tmp_path / "retours.mbox", list(returned.values()))
    result = run("inbox", "import", str(path), env=sent_env)
    assert result.exit_code == 0, result.output
    assert departures(db_url) == {
        "anne.dupont@example.net": ("bounce", REPLAY),
        "bruno.martin@example.com": ("complaint", REPLAY),
        "chloe.bernard@example.fr": ("complaint", REPLAY),
        "david.petit@mairie-exemple.fr": ("unsubscribe", REPLAY),
        "emma.robert@example.com": ("unsubscribe", REPLAY)}
