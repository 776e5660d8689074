"""Wrapping of the plain-text part at 78 columns, keeping list and quote indentation."""

from __future__ import annotations

import re
import textwrap

WIDTH = 78
_PREFIX = re.compile(r"^(\s*(?:>\s?)*(?:[-*]\s|\d+\.\s)?\s*)")


_BEFORE_PUNCTUATION = re.compile(r" (?=[:;?!»](?:\s|$))")
_AFTER_GUILLEMET = re.compile(r"« ")


def keep_french_spacing(text: str) -> str:
    """No line break between a word and ':', ';', '?', '!', '»' or after '«'."""
    return _AFTER_GUILLEMET.sub("«\u00a0", _BEFORE_PUNCTUATION.sub("\u00a0", text))


# In HTML the punctuation may be followed by a tag or an entity too. One pass over the
# whole document: CSS and URLs never have a space before these marks, attribute text
# (alt, aria-label) gains the same non-breaking space as the text.
_BEFORE_PUNCTUATION_HTML = re.compile(r" (?=[:;?!»](?:\s|$|<|&))")


def keep_french_spacing_html(html: str) -> str:
    """The same in an HTML document."""
    return _AFTER_GUILLEMET.sub("«\u00a0", _BEFORE_PUNCTUATION_HTML.sub("\u00a0", html))


def wrap(text: str, width: int = WIDTH) -> str:
    """Wrap every long line; URLs and other long words are never broken."""
    out: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line.rstrip())
            continue
        prefix = _PREFIX.match(line).group(1)  # type: ignore[union-attr]
        quote = prefix[: len(prefix) - len(prefix.lstrip(" >"))] if ">" in prefix else ""
        indent = quote + " " * (len(prefix) - len(quote))
        out.extend(
            textwrap.wrap(
                line[len(prefix) :],
                width,
                initial_indent=prefix,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return "\n".join(out)


def squeeze_blank_lines(text: str) -> str:
    """At most one blank line in a row, none at the start, one newline at the end."""
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"
