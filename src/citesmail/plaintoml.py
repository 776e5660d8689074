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
    index = 0  # where the next statement must start
    for found in _STATEMENT.finditer(text):
        if found.start() != index:
            return None  # what lies between is not plain
        if found.end() == index:
            break  # the end of the text (an empty statement matches there, always)
        index = found.end()
        kind = found.lastgroup  # the value's group, or the header's; None: a blank line
        if kind == "table":
            name = found.group(kind)
            if name in root:
                return None
            table = root[name] = {}
        elif kind == "tables":
            name = found.group(kind)
            if name in root and name not in arrays:
                return None
            arrays.add(name)
            table = {}
            root.setdefault(name, []).append(table)
        elif kind is not None:
            key, value = found.group("key"), _value(kind, found.group(kind))
            if key in table or value is None:
                return None
            table[key] = value
    return root


def _value(kind: str, text: str) -> Any:
    if kind == "text":
        return text
    if kind == "boolean":
        return text == "true"
    if kind == "array":
        return _ELEMENT.findall(text)
    year, month, day, hour, minute, second = (int(part) for part in re.split("[-T:]", text))
    try:  # a local date-time, as tomllib gives it
        return datetime(year, month, day, hour, minute, second)
    except ValueError:  # 2027-02-30: tomllib says where
        return None
