"""The bytes of a file that should be a spreadsheet's text, read with bounds.

A line longer than MAX_LINE or a NUL byte stops the reading where it is found, so that
`/dev/zero`, a binary file or a gigabyte without a line end costs about a megabyte of
memory and a clear error, instead of all the memory of the machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import CitesmailError

MAX_LINE = 1 << 20  # bytes; a contacts row is a few hundred, a long one a few thousand
_CHUNK = 1 << 16
_SNIFF = 8192  # a NUL this early: the file is not text at all (an image, a .xlsx, ...)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_CSV_HINT = "export the sheet as CSV from your spreadsheet (.xlsx is not read)"


def _count_ends(data: bytes, after_cr: bool) -> int:
    """Line ends in `data` (LF, CRLF or a lone CR, as the csv module reads them); the
    LF of a CRLF cut between two reads is not counted twice."""
    ends = data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
    return ends - 1 if after_cr and data.startswith(b"\n") else ends


@dataclass
class _Lines:
    """Where the reading is: line ends seen, and bytes since the last one."""

    ended: int = 0
    tail: int = 0
    after_cr: bool = False

    def feed(self, chunk: bytes) -> int | None:
        """Count `chunk` in; the number of a line it makes longer than MAX_LINE, if any."""
        ends = [p for p in (chunk.find(b"\n"), chunk.find(b"\r")) if p >= 0]
        if not ends:
            self.tail += len(chunk)
            self.after_cr = False
            return self.ended + 1 if self.tail > MAX_LINE else None
        if self.tail + min(ends) > MAX_LINE:
            return self.ended + 1
        self.ended += _count_ends(chunk, self.after_cr)
        self.tail = len(chunk) - 1 - max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        self.after_cr = chunk.endswith(b"\r")
        return None

    def line_at(self, chunk: bytes, position: int) -> int:
        """The line of byte `position` of a chunk not yet fed."""
        return self.ended + 1 + _count_ends(chunk[:position], self.after_cr)


def _refuse_binary(chunk: bytes, lines: _Lines, offset: int, path: Path) -> None:
    if offset == 0 and chunk.startswith(_UTF16_BOMS):
        raise CitesmailError("UTF-16 text (Excel's “Unicode text”) is not read",
                             "save the sheet as “CSV UTF-8” from your spreadsheet", path=path)
    nul = chunk.find(b"\x00")
    if nul < 0:
        return
    if offset + nul < _SNIFF:
        raise CitesmailError("not a CSV file (binary content)", _CSV_HINT, path=path)
    # Text with a NUL further on: PostgreSQL cannot store it, and no spreadsheet writes it.
    raise CitesmailError("a NUL byte: not a CSV file (binary content)", _CSV_HINT,
                         path=path, line=lines.line_at(chunk, nul))


def read_text_bytes(path: Path) -> bytes:
    """The whole file, once it is known to be made of lines of text of sensible length."""
    parts: list[bytes] = []
    lines = _Lines()
    offset = 0
    try:
        with path.open("rb") as file:
            while chunk := file.read(_CHUNK):
                _refuse_binary(chunk, lines, offset, path)
                long_line = lines.feed(chunk)
                if long_line is not None:
                    raise CitesmailError(
                        f"a line longer than {MAX_LINE >> 20} MB: is this a CSV file?",
                        "a contacts file has one contact a line; export the sheet as CSV "
                        "again", path=path, line=long_line)
                parts.append(chunk)
                offset += len(chunk)
    except FileNotFoundError:
        raise CitesmailError("no such file", "check the path", path=path) from None
    except IsADirectoryError:
        raise CitesmailError("is a folder", "give the path of a .csv file", path=path) from None
    return b"".join(parts)
