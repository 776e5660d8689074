"""The plainest TOML documents, read without tomllib: what front matter mostly is.

tomllib is pure Python and was a quarter of a publish's CPU. The documents people write
here are lines of `key = "text"`, local date-times, booleans, arrays of texts, and
`[table]` / `[[array of tables]]` headers. `read_plain` reads exactly those, the way
tomllib reads them, and gives up (None) on anything else: an escape, a literal or
multi-line string, a number, a dotted key, a comment inside an array, a key or table
defined twice, a CRLF line end... The caller then asks tomllib, which reads it or says
what is wrong where: this module never decides that a document is wrong.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

_CHARS = r'[^"\\\x00-\x08\x0a-\x1f\x7f]*'  # of a basic string with no escape
_SPACE = r"[ \t\n]*"  # inside an array, lines may break
_STATEMENT = re.compile(rf"""
    [ \t]*(?:
        (?P<key>[A-Za-z0-9_-]+)[ \t]*=[ \t]*(?:
            "(?P<text>{_CHARS})"
          | (?P<moment>[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}})
          | (?P<boolean>true|false)
          | (?P<array>\[(?:{_SPACE}"{_CHARS}"{_SPACE},)*(?:{_SPACE}"{_CHARS}")?{_SPACE}\])
        )
      | \[(?P<table>[A-Za-z0-9_-]+)\]
      | \[\[(?P<tables>[A-Za-z0-9_-]+)\]\]
    )?
    [ \t]*(?:\#[^\x00-\x08\x0a-\x1f\x7f]*)?(?:\n|\Z)
    """, re.VERBOSE)
_ELEMENT = re.compile(r'"([^"]*)"')


def read_plain(text: str) -> dict[str, Any] | None:
    """What tomllib.loads(text) returns, when `text` is plain enough; else None."""
    root: dict[str, Any] = {}
    table = root
    arrays: set[str] = set()  # the names of [[array of tables]]
    index = 0
    while index < len(text):
        found = _STATEMENT.match(text, index)
        if found is None or found.end() == index:
            return None
        index = found.end()
        key, name, names = found.group("key", "table", "tables")
        if key is not None:
            if key in table:
                return None
            value = _value(found)
            if value is None:
                return None
            table[key] = value
        elif name is not None:
            if name in root:
                return None
            table = root[name] = {}
        elif names is not None:
            if names in root and names not in arrays:
                return None
            arrays.add(names)
            table = {}
            root.setdefault(names, []).append(table)
    return root


def _value(found: re.Match[str]) -> Any:
    text, moment, boolean, array = found.group("text", "moment", "boolean", "array")
    if text is not None:
        return text
    if boolean is not None:
        return boolean == "true"
    if array is not None:
        return _ELEMENT.findall(array)
    year, month, day, hour, minute, second = (int(part) for part in re.split("[-T:]", moment))
    try:  # a local date-time, as tomllib gives it
        return datetime(year, month, day, hour, minute, second)
    except ValueError:  # 2027-02-30: tomllib says where
        return None
