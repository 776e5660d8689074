"""Where messages that came back are read from: an mbox file, a Maildir folder or one
.eml file (`inbox import`), or an IMAP folder (`inbox fetch`, imap.py).

A source gives each message's bytes under a name for the report, then files away the
ones handled: a Maildir moves them into its processed subfolder (Maildir++: the folder
name's '/' become '.'), flagged seen; an mbox file and an .eml file are never modified
(a second import is harmless because what it does was done already).
"""

from __future__ import annotations

import mailbox
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from ..errors import CitesmailError

HINT = "give an mbox file, a Maildir folder (with cur/, new/ and tmp/) or an .eml file"


class Source(Protocol):
    where: str  # where handled messages go, for the report ("" = they stay)

    def count(self) -> int: ...

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """(name, bytes) of each message."""
        ...

    def file_away(self, names: Sequence[str]) -> int:
        """Move the named messages to the processed folder; how many moved."""
        ...


class MboxSource:
    where = ""

    def __init__(self, path: Path) -> None:
        self.path = path

    def count(self) -> int:
        box = mailbox.mbox(self.path, create=False)
        try:
            return len(box)
        finally:
            box.close()

    def messages(self) -> Iterator[tuple[str, bytes]]:
        box = mailbox.mbox(self.path, create=False)
        try:
            for number, key in enumerate(box.iterkeys(), start=1):
                yield f"mbox message {number}", box.get_bytes(key)
        finally:
            box.close()

    def file_away(self, names: Sequence[str]) -> int:
        return 0


class FileSource:
    where = ""

    def __init__(self, path: Path) -> None:
        self.path = path

    def count(self) -> int:
        return 1

    def messages(self) -> Iterator[tuple[str, bytes]]:
        yield self.path.name, self.path.read_bytes()

    def file_away(self, names: Sequence[str]) -> int:
        return 0


def maildir_folder(processed_folder: str) -> str:
    """The Maildir++ subfolder of a folder name: 'citesmail/processed' ->
    '.citesmail.processed'."""
    return "." + ".".join(part for part in processed_folder.split("/") if part)


class MaildirSource:
    def __init__(self, path: Path, processed_folder: str) -> None:
        self.path = path
        self.target = path / maildir_folder(processed_folder)
        self.where = f"{self.target.name}/ of {path}"
        self.files: dict[str, Path] = {}

    def _files(self) -> list[Path]:
        found = [entry for sub in ("new", "cur") for entry in (self.path / sub).iterdir()
                 if entry.is_file() and not entry.name.startswith(".")]
        return sorted(found, key=lambda entry: entry.name)

    def count(self) -> int:
        return len(self._files())

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for entry in self._files():
            name = f"Maildir message {entry.name.split(':')[0]}"
            try:
                data = entry.read_bytes()
            except FileNotFoundError:  # moved meanwhile by a mail client
                continue
            self.files[name] = entry
            yield name, data

    def file_away(self, names: Sequence[str]) -> int:
        for sub in ("cur", "new", "tmp"):
            (self.target / sub).mkdir(parents=True, exist_ok=True)
        (self.target / "maildirfolder").touch()
        moved = 0
        for name in names:
            entry = self.files[name]
            key, _, info = entry.name.partition(":")
            flags = info[2:] if info.startswith("2,") else ""
            flags = "".join(sorted(set(flags) | {"S"}))
            try:
                os.rename(entry, self.target / "cur" / f"{key}:2,{flags}")
            except FileNotFoundError:
                continue
            moved += 1
        return moved


def open_source(path: Path, processed_folder: str) -> Source:
    """A Maildir folder, an mbox file, or a single message file."""
    if path.is_dir():
        if all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
            return MaildirSource(path, processed_folder)
        raise CitesmailError("a folder, but not a Maildir: it has no cur/, new/ and tmp/",
                             HINT, path=path)
    if not path.exists():
        raise CitesmailError("no such file or folder", HINT, path=path)
    try:
        with path.open("rb") as file:
            start = file.read(5)
    except OSError as exc:
        raise CitesmailError(f"cannot be read: {exc.strerror}", HINT, path=path) from None
    if start == b"From " or not start:
        return MboxSource(path)
    return FileSource(path)
