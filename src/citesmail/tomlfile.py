"""TOML reading with errors that point at a line, for config and front matter alike."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from .errors import CitesmailError, Problem, close_names, did_you_mean

_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_BARE_KEY = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_KEY_LINE = re.compile(rf"^\s*({_BARE_KEY}(?:\s*\.\s*{_BARE_KEY})*)\s*=")
_TABLE = re.compile(rf"^\s*\[\s*({_BARE_KEY}(?:\s*\.\s*{_BARE_KEY})*)\s*\]")
_SPECIAL = re.compile(r"[#\"'\[\]{}]")
# TOML's strings: multi-line basic and literal, then one-line basic and literal. Group 1,
# the closing quotes, is None for a string left open (to the end of its line, or the text).
_STRINGS = (re.compile(r'"""(?:[^\\]|\\.)*?(?:("{3,5})|\Z)', re.DOTALL),
            re.compile(r"'''.*?(?:('{3,5})|\Z)", re.DOTALL),
            re.compile(r'"(?:[^"\\\n]|\\.)*(")?'),
            re.compile(r"'[^'\n]*(')?"))
_ARRAY_TABLE = re.compile(rf"^\s*\[\[\s*({_BARE_KEY}(?:\s*\.\s*{_BARE_KEY})*)\s*\]\]")


# Deeper nesting than any configuration or front matter needs. tomllib recurses once or
# twice per level: a few hundred levels exhaust Python's stack (RecursionError).
MAX_NESTING = 50


def parse_toml(
    text: str,
    path: Path | str,
    first_line: int = 1,
    error: type[CitesmailError] = CitesmailError,
) -> dict[str, Any]:
    """Parse TOML; a syntax error becomes a Problem at its line in the whole file."""
    # Nesting deeper than the limit needs more brackets than the limit: only then scan.
    openers = text.count("[") + text.count("{")
    too_deep = _too_deep(text, MAX_NESTING) if openers > MAX_NESTING else None
    if too_deep is not None:
        raise error(
            f"arrays or inline tables nested more than {MAX_NESTING} deep",
            "flatten the value on that line",
            path=path, line=too_deep[0] + first_line - 1, column=too_deep[1])
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message, line, column = _where_noticed(str(exc), text)
        made = None if line is None else _where_made(text, _offset(text, line, column))
        if made is not None:
            message, (line, column) = made[1], _position(text, made[0])
        raise error(
            f"TOML syntax error: {message[:1].lower()}{message[1:]}",
            "check quotes, brackets and '=' on that line",
            path=path,
            line=None if line is None else line + first_line - 1,
            column=column,
        ) from None


def _where_noticed(message: str, text: str) -> tuple[str, int | None, int | None]:
    """tomllib's message without its place, and the place: (line, column), or the last
    line when it reached the end of the text, or nothing."""
    match = _POSITION.search(message)
    if match:
        return message[: match.start()].strip(), int(match.group(1)), int(match.group(2))
    if message.endswith("(at end of document)"):  # the last line is unfinished
        return (message.removesuffix("(at end of document)").strip(),
                len(text.splitlines()), None)
    return message, None, None


def _where_made(text: str, offset: int) -> tuple[int, str] | None:
    """(index, message) of the mistake behind an error tomllib noticed at `offset`, when
    it was made before: a string left open, or an array or inline table left open when
    the text ends or a new key or table starts; None when tomllib's place is right."""
    line_start = text.rfind("\n", 0, offset) + 1
    opened: list[tuple[int, str]] = []
    for index, token, closed in _tokens(text, offset):
        if not closed:
            return index, "unclosed string"
        if index >= line_start:  # brackets of the line where tomllib stopped: its own
            continue
        if token in "[{":
            opened.append((index, token))
        elif token in "]}" and opened:
            opened.pop()
    if opened and (offset >= len(text) or _starts_statement(text, line_start, offset)):
        index, token = opened[-1]
        return index, "unclosed array" if token == "[" else "unclosed inline table"
    return None


def _starts_statement(text: str, line_start: int, offset: int) -> bool:
    """Whether the line holding `offset` is a table header, or a key/value line at whose
    key tomllib stopped: what cannot be part of a value."""
    line = text[line_start:_end_of_line(text, line_start)]
    if line.startswith("["):
        return bool(_TABLE.match(line) or _ARRAY_TABLE.match(line))
    return not text[line_start:offset].strip() and _KEY_LINE.match(line) is not None


def _offset(text: str, line: int, column: int | None) -> int:
    """The index in `text` of a 1-based (line, column); the end of the text without a
    column (tomllib's "end of document")."""
    if column is None:
        return len(text)
    start = 0
    for _ in range(line - 1):
        start = text.find("\n", start) + 1
    return start + column - 1


def _position(text: str, index: int) -> tuple[int, int]:
    """The 1-based (line, column) of an index in `text`, counted as tomllib counts."""
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def _too_deep(text: str, limit: int) -> tuple[int, int] | None:
    """(line, column) where `[` and `{` outside strings and comments first nest deeper
    than `limit`; None when they never do."""
    depth = 0
    for index, token, _ in _tokens(text, len(text)):
        if token in "\"'":
            continue
        depth = depth + 1 if token in "[{" else max(depth - 1, 0)
        if depth > limit:
            return _position(text, index)
    return None


def _tokens(text: str, end: int) -> Iterator[tuple[int, str, bool]]:
    """(index, first character, closed) of each bracket and string outside comments that
    starts before `end`: a tokenizer that knows just enough TOML for that."""
    index = 0
    while (found := _SPECIAL.search(text, index, end)) is not None:
        index, char = found.start(), found.group()
        if char == "#":
            index = _end_of_line(text, index)
        elif char in "\"'":
            string = _string_at(text, index)
            yield index, char, string.group(1) is not None
            index = string.end()
        else:
            yield index, char, True
            index += 1


def _end_of_line(text: str, index: int) -> int:
    found = text.find("\n", index)
    return len(text) if found < 0 else found


def _string_at(text: str, index: int) -> re.Match[str]:
    """The string opening at `index`; an unclosed one ends its line, or the text."""
    for pattern in _STRINGS:
        found = pattern.match(text, index)
        if found is not None:
            return found
    raise AssertionError("not reached: a quote always starts one of them")


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = re.findall(_BARE_KEY, dotted)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def key_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """Map every key path (tables, array-of-table indices, keys) to its first line (1-based)."""
    lines: dict[tuple[str | int, ...], int] = {}
    counts: dict[tuple[str, ...], int] = {}
    current: tuple[str | int, ...] = ()
    for number, raw in enumerate(text.split("\n"), start=1):
        if match := _ARRAY_TABLE.match(raw):
            name = _split_key(match.group(1))
            index = counts.get(name, 0)
            counts[name] = index + 1
            lines.setdefault(name, number)
            current = (*name, index)
        elif match := _TABLE.match(raw):
            current = _split_key(match.group(1))
        elif match := _KEY_LINE.match(raw):
            key = (*current, *_split_key(match.group(1)))
            lines.setdefault(key, number)
            continue
        else:
            continue
        lines.setdefault(current, number)
    return lines


def line_of(lines: dict[tuple[str | int, ...], int], loc: Sequence[str | int]) -> int | None:
    """The line of the longest known prefix of `loc`."""
    for end in range(len(loc), 0, -1):
        found = lines.get(tuple(loc[:end]))
        if found is not None:
            return found
    return None


def dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def allowed_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The keys a (nested) model accepts at the table holding `loc`."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is None:
            return []
    return sorted(f.alias or name for name, f in current.model_fields.items())


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def validation_problems(
    exc: ValidationError,
    model: type[BaseModel],
    text: str,
    path: Path | str,
    first_line: int = 1,
    elsewhere: Mapping[tuple[str, ...], str] | None = None,
) -> list[Problem]:
    """Turn pydantic errors into one Problem per error, each at the line of its key, or
    named by where else its value came from (`elsewhere`: key path -> source)."""
    lines = key_lines(text)
    problems = []
    errors = exc.errors(include_url=False)
    typed_for = _typed_for(errors, model)
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "missing" and loc in typed_for:
            continue  # its misspelling is reported: one mistake, one error
        source = (elsewhere or {}).get(tuple(str(part) for part in loc[:2]))
        line = None if source else line_of(lines, loc)
        name = dotted(loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            allowed = allowed_keys(model, loc)
            message = f"unknown key '{name}'"
            hint = did_you_mean(str(loc[-1]), allowed) or \
                f"fix its spelling or remove it (allowed here: {', '.join(allowed)})"
        elif kind == "missing":
            message = f"'{name}' is required"
            hint = f"add {loc[-1]} = ..." + (f" under [{dotted(loc[:-1])}]" if len(loc) > 1 else "")
        else:
            message = f"'{name}': {_lower_first(error['msg'])}"
            value = _without_password(error.get("input"))
            hint = f"got {value!r}" if isinstance(value, (int, float, bool)) or (
                isinstance(value, str) and value.strip()) else ""
            tables = [part for part in loc[:-1] if isinstance(part, str)]
            if not hint and any(isinstance(p, int) for p in loc) and tables and \
                    tables[0] != "items":
                hint = f"or remove this [[{tables[0]}]] table"
        if line is None and not source:  # a missing top-level key: the start of the TOML
            line = 0 if first_line > 1 else None
        problems.append(
            Problem(message, hint, source or path,
                    None if line is None else line + first_line - 1)
        )
    return sorted(problems, key=lambda problem: problem.line or 0)


def _typed_for(errors: Sequence[ErrorDetails],
               model: type[BaseModel]) -> set[tuple[str | int, ...]]:
    """The key paths that an unknown key beside them is likely a misspelling of."""
    meant: set[tuple[str | int, ...]] = set()
    for error in errors:
        if error["type"] == "extra_forbidden":
            loc = tuple(error["loc"])
            meant.update((*loc[:-1], key)
                         for key in close_names(str(loc[-1]), allowed_keys(model, loc)))
    return meant


def _without_password(value: Any) -> Any:
    """A URL's password is not repeated in a message (database URLs carry one)."""
    if not isinstance(value, str) or "://" not in value:
        return value
    try:
        password = urlsplit(value).password
    except ValueError:
        return value
    return value.replace(f":{password}@", ":***@") if password else value


def _lower_first(text: str) -> str:
    text = text.removeprefix("Value error, ")
    return text[:1].lower() + text[1:]
