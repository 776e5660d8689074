"""Process locks on SQLite: a file beside the database, held with flock, gone after use."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from citesmail.db import open_database
from citesmail.locks import Busy, ProcessLock, _same_file


def test_a_lock_is_exclusive_and_leaves_no_file(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'c.db'}")
    path = tmp_path / "c.db.send-1.lock"
    with ProcessLock(db, "send-1"):
        assert path.read_text() == str(os.getpid())
        with pytest.raises(Busy, match=f"pid {os.getpid()}"):
            ProcessLock(db, "send-1").acquire()
    assert not path.exists()
    with ProcessLock(db, "send-1"):  # and it can be taken again
        assert path.exists()
    assert list(tmp_path.glob("*.lock")) == []
    db.close()


def test_a_lock_file_removed_by_its_holder_is_not_taken(tmp_path: Path) -> None:
    """A process that opened the file just before its holder removed it gets the flock
    on a file nobody else will see: it must notice, and take the new file instead."""
    db = open_database(f"sqlite:///{tmp_path / 'c.db'}")
    path = tmp_path / "c.db.worker.lock"
    holder = ProcessLock(db, "worker")
    holder.acquire()
    late = path.open("a+")  # opened while held
    holder.release()  # removes the file
    fcntl.flock(late, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the old file: flock succeeds
    assert not _same_file(late, path)
    with ProcessLock(db, "worker"), path.open() as current:  # a new file, locked
        assert _same_file(current, path)
        with pytest.raises(Busy):
            ProcessLock(db, "worker").acquire()
    late.close()
    db.close()
