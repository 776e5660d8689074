"""Write a site into a folder, touching only what changed.

A file is written only when its bytes differ from those on disk (so a second publish
with nothing changed writes nothing and every mtime stays), through a temporary file
and an atomic rename (a web server never serves half a page). The folder keeps a list
of the files publish wrote (MANIFEST); a file on it that the site no longer has (a
campaign given `archive = false`) is removed. Nothing else in the folder is touched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import CitesmailError

MANIFEST = ".citesmail-publish"


@dataclass(frozen=True)
class Written:
    written: list[str]
    unchanged: int
    removed: list[str]


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except FileNotFoundError:
        return False


def _replace(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)  # served to anyone: readable by the web server
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _inside(folder: Path, name: str) -> Path:
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise CitesmailError(f"{name} is outside {folder}", "check the manifest file")
    return path


def _previous(folder: Path) -> list[str]:
    try:
        return (folder / MANIFEST).read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return []


def write_site(folder: Path, files: dict[str, bytes]) -> Written:
    if folder.exists() and not folder.is_dir():
        raise CitesmailError(f"{folder} is not a folder", "give -o a folder to write into")
    written = []
    for name in sorted(files):
        path = _inside(folder, name)
        if not _same(path, files[name]):
            _replace(path, files[name])
            written.append(name)
    removed = [name for name in _previous(folder) if name not in files]
    for name in removed:
        path = _inside(folder, name)
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # its folder, once empty
            path.parent.rmdir()
    manifest = "".join(f"{name}\n" for name in sorted(files)).encode("utf-8")
    if not _same(folder / MANIFEST, manifest):
        _replace(folder / MANIFEST, manifest)
    return Written(written, len(files) - len(written), removed)
