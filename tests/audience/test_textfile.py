"""contacts import of what is not a contacts file: endless, binary or damaged input stops
at once with one located line, in bounded memory, and stores nothing."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import func, select

from citesmail.audience.importer import import_contacts
from citesmail.audience.textfile import MAX_LINE, read_text_bytes
from citesmail.db import Contact, Database, open_database
from citesmail.errors import CitesmailError

CITESMAIL = Path(sys.executable).parent / "citesmail"
# A command needs well under 256 MB of address space (measured); the old reading of
# /dev/zero ran into this cap within a second instead of into the machine's memory.
MEMORY_CAP = 512 << 20
ENDLESS_LINE = (b"import sys\n"
                b"out = sys.stdout.buffer\n"
                b"out.write(b'email;nom\\n')\n"
                b"chunk = b'a' * 65536\n"
                b"while True:\n"
                b"    out.write(chunk)\n")


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _import(path: str, db_url: str, cwd: Path,
            **kwargs: object) -> subprocess.CompletedProcess[str]:
    """`citesmail contacts import PATH` in its own capped process; the timeout is only a
    backstop, the command itself ends at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITESMAIL_")}
    return subprocess.run([str(CITESMAIL), "contacts", "import", path], cwd=cwd,
                          env={**env, "CITESMAIL_DATABASE_URL": f'"{db_url}"'},
                          preexec_fn=_cap_memory, capture_output=True, text=True, timeout=60,
                          **kwargs)  # type: ignore[call-overload]


def _stored(db_url: str) -> int:
    db = open_database(db_url)
    with db.session() as session:
        count = session.scalar(select(func.count()).select_from(Contact)) or 0
    db.close()
    return count


def test_dev_zero_is_refused_at_once(db_url: str, tmp_path: Path) -> None:
    result = _import("/dev/zero", db_url, tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "/dev/zero: error: not a CSV file (binary content) — export the sheet as CSV from "
        "your spreadsheet (.xlsx is not read)"]
    assert _stored(db_url) == 0


def test_an_endless_line_is_refused_after_a_megabyte(db_url: str, tmp_path: Path) -> None:
    writer = subprocess.Popen([sys.executable, "-c", ENDLESS_LINE], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    try:
        result = _import("/dev/stdin", db_url, tmp_path, stdin=writer.stdout)
    finally:
        writer.kill()
        writer.wait()
        assert writer.stdout is not None
        writer.stdout.close()
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "/dev/stdin:2: error: a line longer than 1 MB: is this a CSV file? — a contacts file "
        "has one contact a line; export the sheet as CSV again"]
    assert _stored(db_url) == 0


def test_a_50_mb_line_stops_the_import_early(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("wb") as out:
        out.write(b"email;nom\r\na@ex.fr;A\r\nb@ex.fr;")
        for _ in range(50):
            out.write(b"x" * (1 << 20))
        out.write(b"\r\nc@ex.fr;C\r\n")
    tracemalloc.start()
    try:
        with pytest.raises(CitesmailError) as caught:
            import_contacts(db, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(caught.value) == (f"{path}:3: a line longer than 1 MB: is this a CSV file? — a "
                                 "contacts file has one contact a line; export the sheet as "
                                 "CSV again")
    assert peak < 4 * MAX_LINE  # what was read up to the long line, not the 50 MB
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 0


def test_a_nul_byte_far_into_a_file_is_refused_on_its_line(db: Database,
                                                          tmp_path: Path) -> None:
    """PostgreSQL cannot store a NUL in text (SQLite did): both refuse the file alike."""
    path = tmp_path / "nul.csv"
    rows = b"".join(b"n%d@ex.fr;N\n" % i for i in range(2000))
    path.write_bytes(b"email;nom\n" + rows + b"z@ex.fr;A\x00B\n")
    with pytest.raises(CitesmailError) as caught:
        import_contacts(db, path)
    assert str(caught.value).startswith(f"{path}:2002: a NUL byte: not a CSV file")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 0


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_line_numbers_and_the_exact_limit(tmp_path: Path, end: bytes) -> None:
    """Any line end; a line of MAX_LINE bytes passes, one more byte does not. A CRLF cut
    between two reads of the file is counted once."""
    short = [b"x" * 65535] * 4  # the first line end falls on the first read's boundary
    fits = b"y" * MAX_LINE
    path = tmp_path / "lines.csv"
    path.write_bytes(end.join([*short, fits, b"z"]))
    assert read_text_bytes(path) == end.join([*short, fits, b"z"])
    path.write_bytes(end.join([*short, b"a", fits + b"y", b"z"]))
    with pytest.raises(CitesmailError) as caught:
        read_text_bytes(path)
    assert caught.value.problems[0].line == 6


@pytest.mark.parametrize("end", [b"\n", b"\r"])
def test_a_line_at_the_limit_after_short_lines_on_the_same_read(tmp_path: Path,
                                                                 end: bytes) -> None:
    """The long line's length counts from the last line end before it, and ends at the
    first one after it, though the reads hold other line ends."""
    data = end.join([b"email", b"a", b"y" * MAX_LINE, b"z", b"w", b""])
    path = tmp_path / "fits.csv"
    path.write_bytes(data)
    assert read_text_bytes(path) == data


def _refusal(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "x.csv"
    path.write_bytes(data)
    with pytest.raises(CitesmailError) as caught:
        read_text_bytes(path)
    return str(caught.value).removeprefix(f"{path}")


HINT = " — export the sheet as CSV from your spreadsheet (.xlsx is not read)"


@pytest.mark.parametrize(("data", "message"), [
    (b"\x00\x00\x00\x01 binary", ": not a CSV file (binary content)" + HINT),
    (b"email\n" + b"x" * 8185 + b"\x00\n", ": not a CSV file (binary content)" + HINT),
    (b"email\n" + b"x" * 8186 + b"\x00\n", ":2: a NUL byte: not a CSV file (binary content)"
     + HINT),  # from byte 8192 on, the file is text with a NUL on a line
    (b"email\n" + b"x" * 100 + b"\x00" + b"x" * 9000 + b"\x00\n",
     ": not a CSV file (binary content)" + HINT),
    # a line spans a whole read, and the next read starts with its line end
    (b"email;n\n" + b"a@ex.fr;" + b"x" * (131072 - 16) + b"\nb@ex.fr;y\nc@ex.fr;\x00\n",
     ":4: a NUL byte: not a CSV file (binary content)" + HINT),
    # a CRLF cut between two reads, a NUL on the next line
    (b"email;n\r\n" + b"a@ex.fr;" + b"x" * 65518 + b"\r\nb@ex.fr;\x00\r\n",
     ":3: a NUL byte: not a CSV file (binary content)" + HINT),
    # early in the second read: still a text file with a NUL on a line
    (b"email\n" + b"x" * 65529 + b"\n" + b"y" * 10 + b"\x00\n",
     ":3: a NUL byte: not a CSV file (binary content)" + HINT),
])
def test_where_a_nul_byte_is_decides_the_error(tmp_path: Path, data: bytes,
                                              message: str) -> None:
    assert _refusal(tmp_path, data) == message


def test_a_missing_file_or_a_folder(tmp_path: Path) -> None:
    missing = tmp_path / "absent.csv"
    with pytest.raises(CitesmailError) as caught:
        read_text_bytes(missing)
    assert str(caught.value) == f"{missing}: no such file — check the path"
    with pytest.raises(CitesmailError) as caught:
        read_text_bytes(tmp_path)
    assert str(caught.value) == f"{tmp_path}: is a folder — give the path of a .csv file"
