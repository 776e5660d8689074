"""The send run's journal: what a killed run leaves tells the next one who got mail."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from citesmail import journal as journal_module
from citesmail.journal import Journal, JournalError, JournalInUse, journal_path, read_journal


def test_the_last_line_about_a_row_counts_and_an_unfinished_line_counts_for_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "send-1-run-a.journal"
    journal = Journal(path, "run-a")
    for delivery_id in (1, 2, 3, 4):
        journal.transmitting(delivery_id)
    journal.accepted(1)
    journal.accepted(3)
    journal.refused(4)  # answered no: not there
    journal.transmitting(4)  # tried again in the same run
    journal.transmitting(5)
    journal.refused(5)
    journal.close(remove=False)
    with path.open("ab") as out:  # killed in the middle of a line
        out.write(b"S 2")
    found = read_journal(path, "run-a")
    assert found is not None
    assert (found.accepted, found.transmitting) == ({1, 3}, {2, 4})  # 5: back to the queue


def test_a_journal_is_believed_only_for_its_own_run_boot_and_whole_lines(
        tmp_path: Path) -> None:
    path = tmp_path / "send-1-run-a.journal"
    assert read_journal(path, "run-a") is None  # no journal
    journal = Journal(path, "run-a")
    journal.accepted(5)
    journal.close(remove=False)
    assert read_journal(path, "run-a") is not None
    assert read_journal(path, "run-b") is None  # another run holds the send now
    assert read_journal(path, None) is None
    assert read_journal(path, "run-a", boot="an-earlier-boot") is None  # lines may be lost
    with path.open("ab") as out:  # a short write (disk full) glued two lines together
        out.write(b"S 6D 7\n")
    assert read_journal(path, "run-a") is None


def test_a_journal_in_use_is_not_read_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "send-1-run-a.journal"
    journal = Journal(path, "run-a")
    journal.transmitting(1)
    with pytest.raises(JournalInUse):  # its run is still going
        read_journal(path, "run-a")
    with pytest.raises(FileExistsError):
        Journal(path, "run-a")
    journal.close(remove=True)
    assert not path.exists()


def test_where_journals_are(tmp_path: Path) -> None:
    sqlite = journal_path(str(tmp_path / "c.db"), tmp_path, "sqlite:///c.db", 7, "r1")
    assert sqlite == tmp_path / "c.db-send-7-r1.journal"
    one = journal_path(None, tmp_path, "postgresql://h/a", 7, "r1")
    other = journal_path(None, tmp_path, "postgresql://h/b", 7, "r1")
    assert one.parent == other.parent == tmp_path / ".citesmail"
    assert one != other  # two databases used from one workspace do not share journals
    assert journal_path(":memory:", tmp_path, "sqlite://", 7, "r1").parent == \
        tmp_path / ".citesmail"


def test_on_a_full_disk_the_answers_owed_are_still_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills when a fourth message asks for room: it does not go, and the three
    already in flight still get their answers (a full disk latched every later line,
    and the next run called them unknown)."""
    monkeypatch.setattr(journal_module, "CHUNK", 96)
    grown: list[int] = []

    def allocate(self: Journal, offset: int, size: int) -> None:
        if grown:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        grown.append(size)
        os.posix_fallocate(self.fd, offset, size)

    monkeypatch.setattr(Journal, "_allocate", allocate)
    path = tmp_path / "send-1-run-a.journal"
    journal = Journal(path, "run-a")
    transmitted = []
    for delivery_id in range(1, 10):
        try:
            journal.transmitting(delivery_id)
        except JournalError as exc:
            assert "the disk is full" in str(exc)
            break
        transmitted.append(delivery_id)
    assert 1 <= len(transmitted) < 9
    for delivery_id in transmitted:
        journal.accepted(delivery_id)
    journal.close(remove=False)
    found = read_journal(path, "run-a")
    assert found is not None
    assert (found.accepted, found.transmitting) == (set(transmitted), set())


def test_the_journal_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "send-1-run-a.journal"
    Journal(path, "run-a").close(remove=False)
    assert path.stat().st_mode & 0o777 == 0o600
