"""The send run's journal: what a killed run leaves tells the next one who got mail."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from citesmail.delivery import journal as journal_module
from citesmail.delivery.journal import (
    Journal,
    JournalError,
    JournalInUse,
    journal_path,
    read_journal,
)


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


def transmit_until_full(journal: Journal, ids: range) -> list[int]:
    """The messages that go (their `D` line written) until the disk is full."""
    went = []
    for delivery_id in ids:
        try:
            journal.transmitting(delivery_id)
        except JournalError as exc:
            assert "the disk is full" in str(exc)
            break
        went.append(delivery_id)
    return went


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
    transmitted = transmit_until_full(journal, range(1, 10))
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


def test_a_journal_of_one_line_says_what_that_line_says(tmp_path: Path) -> None:
    """A run killed just after its first message: the next one must not send it again."""
    sent, going = tmp_path / "send-1-run-a.journal", tmp_path / "send-2-run-a.journal"
    journal = Journal(sent, "run-a")
    journal.accepted(1)
    journal.close(remove=False)
    journal = Journal(going, "run-a")
    journal.transmitting(1)
    journal.close(remove=False)
    found = read_journal(sent, "run-a")
    assert found is not None and (found.accepted, found.transmitting) == ({1}, set())
    found = read_journal(going, "run-a")
    assert found is not None and (found.accepted, found.transmitting) == (set(), {1})


def test_the_journal_is_text_lines_from_its_first_byte(tmp_path: Path) -> None:
    path = tmp_path / "send-1-run-a.journal"
    journal = Journal(path, "run-a")
    journal.transmitting(1)
    journal.accepted(1)
    journal.transmitting(2)
    journal.refused(2)
    journal.close(remove=False)
    boot = journal_module.boot_id()
    assert path.read_bytes().rstrip(b"\0") == \
        f"citesmail-journal run-a {boot}\nD 1\nS 1\nD 2\nN 2\n".encode("ascii")


def test_a_blank_line_is_skipped_and_the_lines_after_it_count(tmp_path: Path) -> None:
    path = tmp_path / "send-1-run-a.journal"
    Journal(path, "run-a").close(remove=False)
    with path.open("r+b") as file:
        file.seek(len(path.read_bytes().rstrip(b"\0")))
        file.write(b"D 1\n\nS 1\nD 2\n")
    found = read_journal(path, "run-a")
    assert found is not None and (found.accepted, found.transmitting) == ({1}, {2})


def test_a_journal_with_a_damaged_first_line_is_not_believed(tmp_path: Path) -> None:
    path = tmp_path / "send-1-run-a.journal"
    path.write_bytes(b"citesmail-journal run-a \xff\xfe\nS 1\n")
    assert read_journal(path, "run-a") is None


def test_where_the_boot_is_unknown_no_journal_is_believed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a boot id, a journal written before a power cut could be believed."""
    real_read_text = Path.read_text

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        if str(self).startswith("/proc/"):
            raise PermissionError(errno.EACCES, "no /proc here")
        return real_read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", read_text)
    path = tmp_path / "send-1-run-a.journal"
    journal = Journal(path, "run-a")
    journal.accepted(1)
    journal.close(remove=False)
    assert read_journal(path, "run-a") is None
    assert read_journal(path, "run-a", boot="") is None


def test_a_journal_in_a_folder_not_made_yet_is_made(tmp_path: Path) -> None:
    path = tmp_path / "workspace" / ".citesmail" / "send-1-run-a.journal"
    Journal(path, "run-a").close(remove=True)
    assert path.parent.is_dir() and not path.exists()


def test_a_journal_that_cannot_be_made_says_so(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot write the send journal"):
        Journal(tmp_path / ("x" * 300), "run-a")


def test_a_journal_already_removed_closes_quietly(tmp_path: Path) -> None:
    path = tmp_path / "send-1-run-a.journal"
    journal = Journal(path, "run-a")
    path.unlink()
    journal.close(remove=True)


def test_a_server_database_names_its_journals_with_12_hex_digits(tmp_path: Path) -> None:
    """A journal left by an interrupted run is found again by this name."""
    path = journal_path(None, tmp_path, "postgresql://h/a", 7, "r1")
    key = journal_module.database_key("postgresql://h/a")
    assert len(key) == 12 and int(key, 16) >= 0
    assert path.name == f"{key}-send-7-r1.journal"


class SmallDisk:
    """A disk with room for `capacity` bytes of journal: fallocate and writes past what
    was allocated fail as on a full disk."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.end, self.calls = capacity, 0, 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        disk = self

        def allocate(journal: Journal, offset: int, size: int) -> None:
            disk.calls += 1
            if offset + size > disk.capacity:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.posix_fallocate(journal.fd, offset, size)
            disk.end = max(disk.end, offset + size)

        def pwrite(journal: Journal, line: bytes, offset: int) -> int:
            if offset + len(line) > disk.end:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return os.pwrite(journal.fd, line, offset)

        monkeypatch.setattr(Journal, "_allocate", allocate)
        monkeypatch.setattr(Journal, "_pwrite", pwrite)


def test_on_a_disk_that_fills_every_message_that_went_gets_its_answer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages go until the disk is full; an answer the journal does not owe, refused
    for lack of room, takes none of the room kept for the answers owed; every message
    that went is then answered, and the next run knows them all as sent."""
    monkeypatch.setattr(journal_module, "CHUNK", 100)
    SmallDisk(300).install(monkeypatch)
    path = tmp_path / "send-1-run-a.journal"
    journal = Journal(path, "run-a")
    went = transmit_until_full(journal, range(1000, 1100))
    assert 3 <= len(went) < 100
    with pytest.raises(JournalError):
        journal.accepted(5000)  # not owed: no room for it
    journal.refused(5001)  # refused before its bytes left: no line, no error
    for delivery_id in went:
        journal.accepted(delivery_id)
    journal.close(remove=False)
    found = read_journal(path, "run-a")
    assert found is not None
    assert (found.accepted, found.transmitting) == (set(went), set())


def test_the_journal_takes_room_a_chunk_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Room for the answers of the messages in flight only: a long run asks the disk
    once per chunk, and its file is no bigger than its lines and one chunk."""
    monkeypatch.setattr(journal_module, "CHUNK", 128)
    disk = SmallDisk(1 << 20)
    disk.install(monkeypatch)
    path = tmp_path / "send-1-run-a.journal"
    journal = Journal(path, "run-a")
    for delivery_id in range(1000, 1200):
        journal.transmitting(delivery_id)
        journal.accepted(delivery_id)
    journal.close(remove=False)
    size, written = path.stat().st_size, len(path.read_bytes().rstrip(b"\0"))
    assert size % 128 == 0 and size // 128 == disk.calls
    assert written <= size < written + 128 + 2 * journal_module.LINE_MAX


def test_a_journal_that_cannot_have_its_first_chunk_is_not_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    SmallDisk(0).install(monkeypatch)
    path = tmp_path / "send-1-run-a.journal"
    with pytest.raises(JournalError, match="the disk is full"):
        Journal(path, "run-a")
    assert not path.exists()


def test_a_failed_line_says_why_and_no_line_follows_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "send-1-run-a.journal"
    journal = Journal(path, "run-a")
    monkeypatch.setattr(Journal, "_pwrite", lambda self, line, offset: len(line) - 1)
    with pytest.raises(JournalError) as short:  # a short write: the disk is full
        journal.transmitting(1)
    assert str(short.value) == (
        f"cannot write the send journal {path}: No space left on device — the disk is "
        "full: fix it, then run the same command to resume (no message goes without its "
        "journal line)")
    monkeypatch.undo()
    with pytest.raises(JournalError) as again:
        journal.transmitting(2)
    assert again.value is short.value
    journal.close(remove=True)

    def broken(self: Journal, line: bytes, offset: int) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    journal = Journal(path, "run-a")
    monkeypatch.setattr(Journal, "_pwrite", broken)
    with pytest.raises(JournalError) as failed:
        journal.transmitting(1)
    assert str(failed.value) == (
        f"cannot write the send journal {path}: Input/output error — Input/output error: "
        "fix it, then run the same command to resume (no message goes without its journal "
        "line)")
    journal.close(remove=True)
