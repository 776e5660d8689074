"""Write a site into a folder, touching only what changed.

A file is written only when its bytes differ from those on disk (so a second publish
with nothing changed writes nothing and every mtime stays), through a temporary file
and an atomic rename (a web server never serves half a page). The folder keeps a list
of the files publish wrote (MANIFEST); a file on it that the site no longer has (a
campaign given `archive = false`) is removed. Nothing else in the folder is touched.

A folder that does not exist yet is written whole under a temporary name beside it,
then renamed: the site appears at once, and its files need no temporary file each
(they were a third of a cold publish's system time).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
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


def _inside(folder: Path, root: Path, name: str) -> Path:
    """`folder / name` resolved (`root`: `folder` resolved), refused outside `folder`.
    A name with no '..' and no link on its way is that already: its parts are looked at
    alone, not every folder from / again (a third of a publish's writing when nothing
    changed)."""
    path = root
    for part in Path(name).parts:  # an absolute name starts again from /: outside
        path = path / part
        if part == ".." or path.is_symlink():
            path = (root / name).resolve()
            break
    if not path.is_relative_to(root):
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
    if not os.path.lexists(folder):
        return _write_new(folder, files)
    written = []
    root = folder.resolve()
    for name in sorted(files):
        path = _inside(folder, root, name)
        if not _same(path, files[name]):
            _replace(path, files[name])
            written.append(name)
    removed = [name for name in _previous(folder) if name not in files]
    for name in removed:
        path = _inside(folder, root, name)
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # its folder, once empty
            path.parent.rmdir()
    manifest = "".join(f"{name}\n" for name in sorted(files)).encode("utf-8")
    if not _same(folder / MANIFEST, manifest):
        _replace(folder / MANIFEST, manifest)
    return Written(written, len(files) - len(written), removed)


def _write_new(folder: Path, files: dict[str, bytes]) -> Written:
    """The whole site into a new folder beside `folder`, renamed to it once complete.
    Nothing in the new folder is older than this run: no file to compare, no link to
    follow, no temporary file needed."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = folder.parent / f".{folder.name}.{secrets.token_hex(8)}.tmp"
    os.mkdir(building)  # as Path.mkdir makes `folder` (mkdtemp's would be private)
    try:
        made = {building}
        for name in sorted(files):
            _create(building, name, files[name], made)
        manifest = "".join(f"{name}\n" for name in sorted(files)).encode("utf-8")
        _create(building, MANIFEST, manifest, made)
        # Renamed over nothing, or over an empty folder made meanwhile (rename refuses
        # one that is not empty).
        os.rename(building, folder)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return Written(sorted(files), 0, [])


def _create(building: Path, name: str, data: bytes, made: set[Path]) -> None:
    """A file of a new folder, and the folders it is in."""
    parts = Path(name).parts
    if not parts or os.path.isabs(name) or ".." in parts:
        raise CitesmailError(f"{name} is not a file name in the site's folder",
                             "a site's files are named after their campaigns' slugs")
    where = building
    for part in parts[:-1]:
        where = where / part
        if where not in made:
            os.mkdir(where)
            made.add(where)
    descriptor = os.open(where / parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(descriptor, "wb") as stream:
        os.fchmod(descriptor, 0o644)  # served to anyone, whatever the umask
        stream.write(data)
