"""MJML compilation (mjml-python) with errors that name the template and the line."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

from mjml import mjml2html

from ..errors import TemplateError

_POSITION = re.compile(r"at position (\d+)(?::\d+)?")


def compile_mjml(source: str, sources: Callable[[], list[tuple[Path, str]]]) -> str:
    """Compile MJML to HTML; `sources()` gives the templates it came from, child first."""
    try:
        return mjml2html(source, disable_comments=True)
    except ValueError as exc:
        line = _error_line(source, str(exc))
        raise _located(str(exc), source, line, sources()) from None


def _error_line(source: str, message: str) -> int | None:
    match = _POSITION.search(message)
    if match:
        offset = int(match.group(1))
        return source.encode("utf-8")[:offset].count(b"\n") + 1
    return _unbalanced_line(source)


class _TagBalance(HTMLParser):
    """Finds the first mj-* tag that is closed wrongly or never closed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, int]] = []
        self.bad_line: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag.startswith("mj") and tag not in {"mj-image", "mj-divider", "mj-spacer"}:
            self.stack.append((tag, self.getpos()[0]))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """`<mj-image ... />` opens and closes itself."""

    def handle_endtag(self, tag: str) -> None:
        if not tag.startswith("mj") or self.bad_line is not None:
            return
        if self.stack and self.stack[-1][0] == tag:
            self.stack.pop()
        elif any(open_tag == tag for open_tag, _ in self.stack):
            self.bad_line = self.stack[-1][1]  # closes an outer tag: the inner one is open
        else:
            self.bad_line = self.getpos()[0]  # closes nothing


def _unbalanced_line(source: str) -> int | None:
    checker = _TagBalance()
    checker.feed(source)
    checker.close()
    if checker.bad_line is not None:
        return checker.bad_line
    return checker.stack[-1][1] if checker.stack else None


def _located(
    message: str, source: str, line: int | None, sources: list[tuple[Path, str]]
) -> TemplateError:
    hint = "check that every <mj-...> tag is closed and its attributes are quoted"
    template = sources[0][0] if sources else None
    # A template whose own mj-* tags do not balance is the culprit, at that line.
    for path, text in sources:
        bad = _unbalanced_line(text)
        if bad is not None:
            return TemplateError(f"MJML error: {message}", hint, path=path, line=bad)
    if line is None:
        return TemplateError(f"MJML error: {message}", hint, path=template)
    snippet = source.split("\n")[line - 1].strip()
    places = [(path, number) for path, text in sources
              for number, candidate in enumerate(text.split("\n"), start=1)
              if snippet and candidate.strip() == snippet]
    if len(places) == 1:  # only an unambiguous match names a line
        return TemplateError(f"MJML error: {message}: {snippet[:60]}", hint,
                             path=places[0][0], line=places[0][1])
    return TemplateError(
        f"MJML error: {message} (line {line} of the generated MJML: {snippet[:60]})",
        hint,
        path=template,
    )
