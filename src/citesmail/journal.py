"""A send run's journal: what happened to each message between two database commits.

The send log is committed in batches (a commit per message cost more than sending it),
so the rows of a batch are all `sending` while its messages go out one by one. The
journal says which of them really went: `D <id>` is appended just before a message's
bytes leave, `S <id>` when the server (or the outbox) has taken it. Each line is one
`write` to a file opened with O_APPEND: a killed process loses none of them (the kernel
has them), so a run that follows knows, for every row left `sending`:

- `S`: sent; `D` without `S`: the server may have it (`unknown`, never resent unless
  asked); neither: it never left (back to `queued`).

The first line names the run and the machine's boot. The send row in the database names
the run that last held it, and a journal is believed only for that run (another machine
may have run the send since) and only during the boot that wrote it: a power cut can
lose its last lines, so after a restart of the machine it says nothing. Without a
journal it can believe, the rows left `sending` are all `unknown`, as when nothing is
known.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MAGIC = "citesmail-journal"


def journal_path(database_file: str | None, workspace: Path, send_id: int) -> Path:
    """Beside the SQLite database (as its -wal file is); for a database server, in the
    workspace's .citesmail folder."""
    if database_file and database_file != ":memory:":
        return Path(f"{database_file}-send-{send_id}.journal")
    return workspace / ".citesmail" / f"send-{send_id}.journal"


@dataclass(frozen=True)
class Recovered:
    accepted: frozenset[int]  # the server took them
    transmitting: frozenset[int]  # they may have gone: unknown


def boot_id() -> str:
    """This boot of the machine (Linux); empty where unknown (then no journal is believed)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def read_journal(path: Path, run_id: str | None, boot: str | None = None) -> Recovered | None:
    """What the journal of `run_id` written during this boot says, or None."""
    boot = boot_id() if boot is None else boot
    if run_id is None or not boot:
        return None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    lines = data.split(b"\n")[:-1]  # a last line without its newline was never finished
    if not lines or lines[0].decode("ascii", "replace") != f"{MAGIC} {run_id} {boot}":
        return None
    accepted: set[int] = set()
    transmitting: set[int] = set()
    for line in lines[1:]:
        mark, _, number = line.partition(b" ")
        if not number.isdigit():
            continue
        (accepted if mark == b"S" else transmitting).add(int(number))
    return Recovered(frozenset(accepted), frozenset(transmitting - accepted))


class Journal:
    """The journal a run appends to. Its methods are safe from several threads: each
    line is a single write() on an O_APPEND file."""

    def __init__(self, path: Path, run_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        os.write(self.fd, f"{MAGIC} {run_id} {boot_id()}\n".encode("ascii"))

    def transmitting(self, delivery_id: int) -> None:
        os.write(self.fd, b"D %d\n" % delivery_id)

    def accepted(self, delivery_id: int) -> None:
        os.write(self.fd, b"S %d\n" % delivery_id)

    def close(self, *, remove: bool) -> None:
        """Close; remove the file once the database holds everything it said."""
        os.close(self.fd)
        if remove:
            self.path.unlink(missing_ok=True)
