"""What each campaign gave the site at the last publish, so that the next one renders
only the campaigns whose output may differ.

A campaign's Part is stored under a key made of everything its output depends on: the
campaign file's bytes, its send's state and dates, and the site's key (citesmail's
version and code, the libraries that render, every template the package and the
workspace have, the settings, the base URL). Any change to one of them is a new key,
so the campaign is rendered again; nothing is ever compared by date alone.

The cache lives in the workspace's .citesmail/ (one SQLite file per output folder),
not in the output folder: that folder is copied to the web host as it is. A cache that
cannot be opened, read or written, or whose rows are not what this version stores, is
not used (the campaigns are rendered); a publish never fails because of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path

from .. import __version__
from ..config import Settings
from ..render.environment import BUILTIN_TEMPLATES
from .parts import Part, part_from_json, part_to_json
from .site import Source

FORMAT = "citesmail-publish-cache 1"  # what a row holds: a new one ignores older caches
CODE = Path(__file__).resolve().parent.parent  # the package: its code is in the key
# Libraries whose output is in the pages (a new version may print otherwise).
LIBRARIES = ("jinja2", "markdown-it-py", "babel", "icalendar", "markupsafe")


def _digest(parts: Iterable[bytes]) -> str:
    hashed = hashlib.sha256()
    for part in parts:
        hashed.update(len(part).to_bytes(8, "big"))
        hashed.update(part)
    return hashed.hexdigest()


def _files(folder: Path, pattern: str) -> Iterator[bytes]:
    """Each file's name and bytes (templates) under `folder`, in a stable order."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob(pattern)):
        if path.is_file():
            yield str(path.relative_to(folder)).encode()
            with contextlib.suppress(OSError):
                yield path.read_bytes()


def _code() -> Iterator[bytes]:
    """The package's modules by size and change time: an edited checkout is new code."""
    for path in sorted(CODE.rglob("*.py")):
        stat = path.stat()
        yield f"{path.relative_to(CODE)} {stat.st_size} {stat.st_mtime_ns}".encode()


def _versions() -> Iterator[bytes]:
    yield f"{FORMAT} {__version__} {sys.version}".encode()
    for name in LIBRARIES:
        try:
            yield f"{name} {metadata.version(name)}".encode()
        except metadata.PackageNotFoundError:
            yield name.encode()


def site_key(settings: Settings, base_url: str) -> str:
    """What every page depends on besides its own campaign."""
    return _digest([*_versions(), *_code(), base_url.encode(),
                    settings.model_dump_json().encode(), str(settings.tz).encode(),
                    *_files(BUILTIN_TEMPLATES, "*"), b"workspace templates",
                    *_files(settings.templates_dir, "*")])


def part_key(site: str, source: Source) -> str:
    """What one campaign's output depends on."""
    return _digest([site.encode(), source.slug.encode(), source.data or b"",
                    str(source.state).encode(), source.published.isoformat().encode(),
                    source.updated.isoformat().encode()])


def head_key(site: str, key: str) -> str:
    """What events.ics's head depends on: the site, and the zones and years it has."""
    return _digest([site.encode(), b"events.ics", key.encode()])


def cache_path(settings: Settings, output: Path) -> Path:
    """One cache per output folder (two folders, e.g. with and without --drafts, do
    not evict each other's rows)."""
    name = hashlib.sha256(str(output.resolve()).encode()).hexdigest()[:16]
    return settings.workspace / ".citesmail" / f"publish-{name}.sqlite"


class PartCache:
    """slug -> (key, Part), read at once; what changed is written back in one
    transaction. Also the text of events.ics before its events (its head: made by
    icalendar, whose import alone was a tenth of a publish with nothing changed)."""

    def __init__(self, rows: dict[str, tuple[str, Part | None]] | None = None) -> None:
        self.rows = dict(rows or {})
        self.put_slugs: set[str] = set()
        self.gone: set[str] = set()
        self.heads: dict[str, str] = {}  # key -> events.ics's head
        self.heads_changed = False

    def head(self, key: str, make: Callable[[], str]) -> str:
        """The head kept under `key`, or the one `make` makes; the one kept from now on
        (a publish needs one head: the next, most likely the same)."""
        text = self.heads.get(key)
        if text is None:
            text = make()
        if list(self.heads) != [key]:
            self.heads, self.heads_changed = {key: text}, True
        return text

    def get(self, slug: str, key: str) -> tuple[bool, Part | None]:
        """(found, its Part: None for a campaign that says `archive = false`)."""
        row = self.rows.get(slug)
        if row is None or row[0] != key:
            return False, None
        return True, row[1]

    def put(self, slug: str, key: str, part: Part | None) -> None:
        self.rows[slug] = (key, part)
        self.put_slugs.add(slug)

    def keep_only(self, slugs: set[str]) -> None:
        """Forget the campaigns this publish did not have."""
        for slug in set(self.rows) - slugs:
            del self.rows[slug]
            self.gone.add(slug)


_SCHEMA = ("CREATE TABLE IF NOT EXISTS parts (slug TEXT PRIMARY KEY, key TEXT NOT NULL, "
           "part TEXT NOT NULL)",
           "CREATE TABLE IF NOT EXISTS heads (key TEXT PRIMARY KEY, head TEXT NOT NULL)")


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=5)
    for table in _SCHEMA:
        connection.execute(table)
    return connection


def _row(slug: object, key: object, text: object) -> tuple[str, str, Part | None] | None:
    if not (isinstance(slug, str) and isinstance(key, str) and isinstance(text, str)):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if data is None:
        return slug, key, None  # archive = false: nothing to publish
    part = part_from_json(data)
    return None if part is None or part.slug != slug else (slug, key, part)


def load_cache(path: Path) -> PartCache:
    """The rows that can be trusted; an empty cache when the file cannot be read."""
    if not path.is_file():
        return PartCache()
    try:
        with contextlib.closing(_connect(path)) as connection:
            rows = connection.execute("SELECT slug, key, part FROM parts").fetchall()
            heads = connection.execute("SELECT key, head FROM heads").fetchall()
    except sqlite3.Error:
        return PartCache()
    cache = PartCache()
    cache.heads = {key: head for key, head in heads
                   if isinstance(key, str) and isinstance(head, str)}
    for row in rows:
        found = _row(*row)
        if found is not None:
            cache.rows[found[0]] = (found[1], found[2])
        elif isinstance(row[0], str):
            cache.gone.add(row[0])  # not trusted: deleted at the next save
    return cache


def save_cache(path: Path, cache: PartCache) -> None:
    """What changed, in one transaction; a cache that cannot be written is left (and
    one that is damaged, made again)."""
    if not cache.put_slugs and not cache.gone and not cache.heads_changed:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(path, cache, cache.put_slugs, cache.gone)
    except sqlite3.DatabaseError:  # not an SQLite file, or a damaged one: a new file
        with contextlib.suppress(OSError, sqlite3.Error):
            path.unlink(missing_ok=True)
            _write(path, cache, set(cache.rows), set())
    except (OSError, sqlite3.Error):
        pass


def _write(path: Path, cache: PartCache, slugs: set[str], gone: set[str]) -> None:
    rows = []
    for slug in sorted(slugs):
        key, part = cache.rows[slug]
        data = None if part is None else part_to_json(part)
        rows.append((slug, key, json.dumps(data, ensure_ascii=False)))
    with contextlib.closing(_connect(path)) as connection, connection:
        connection.executemany("DELETE FROM parts WHERE slug = ?", [(s,) for s in gone])
        connection.executemany("INSERT OR REPLACE INTO parts (slug, key, part) "
                               "VALUES (?, ?, ?)", rows)
        connection.execute("DELETE FROM heads")
        connection.executemany("INSERT INTO heads (key, head) VALUES (?, ?)",
                               cache.heads.items())
