"""The send run's journal: what a killed run leaves tells the next one who got mail."""

from __future__ import annotations

from pathlib import Path

from citesmail.journal import Journal, journal_path, read_journal


def test_lines_say_sent_or_maybe_and_an_unfinished_line_counts_for_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "send-1.journal"
    journal = Journal(path, "run-a")
    for delivery_id in (1, 2, 3):
        journal.transmitting(delivery_id)
    journal.accepted(1)
    journal.accepted(3)
    journal.close(remove=False)
    with path.open("ab") as out:  # killed in the middle of a line
        out.write(b"S 2")
    found = read_journal(path, "run-a")
    assert found is not None
    assert (found.accepted, found.transmitting) == ({1, 3}, {2})


def test_a_journal_is_believed_only_for_its_own_run(tmp_path: Path) -> None:
    path = tmp_path / "send-1.journal"
    assert read_journal(path, "run-a") is None  # no journal
    journal = Journal(path, "run-a")
    journal.accepted(5)
    journal.close(remove=False)
    assert read_journal(path, "run-b") is None  # another run holds the send now
    assert read_journal(path, None) is None
    assert read_journal(path, "run-a") is not None
    assert read_journal(path, "run-a", boot="an-earlier-boot") is None  # lines may be lost
    Journal(path, "run-b").close(remove=True)  # a new run starts the file afresh
    assert not path.exists()


def test_the_journal_sits_beside_the_sqlite_file_else_in_the_workspace(
        tmp_path: Path) -> None:
    assert journal_path(str(tmp_path / "c.db"), tmp_path, 7) == tmp_path / "c.db-send-7.journal"
    assert journal_path(None, tmp_path, 7) == tmp_path / ".citesmail" / "send-7.journal"
    assert journal_path(":memory:", tmp_path, 7).parent == tmp_path / ".citesmail"
