"""Campaign bodies: CommonMark to HTML (markdown-it-py) and to readable plain text."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # Imported here: a publish with nothing changed renders no Markdown, and markdown-it
    # was a tenth of its CPU.
    from markdown_it import MarkdownIt

    # Raw HTML is shown as text: it could break the MJML layout or inject markup.
    return MarkdownIt("commonmark", {"html": False})


def to_html(source: str) -> str:
    html: str = _parser().render(source)
    return html


def to_text(source: str) -> str:
    """Plain text: paragraphs, '- ' lists, headings underlined, every link as its URL.

    Lines are left unwrapped; the caller wraps the whole text part at once.
    """
    blocks: list[tuple[str, bool]] = []  # (text, belongs to a tight list)
    tight = False
    prefixes: list[str] = []  # one per open list item or quote
    ordered: list[int | None] = []
    heading = 0
    first_in_item = False
    for token in _parser().parse(source):
        if token.type in {"bullet_list_open", "ordered_list_open"}:
            start = token.attrGet("start")
            ordered.append(int(start) if token.type == "ordered_list_open" and start else (
                1 if token.type == "ordered_list_open" else None))
        elif token.type in {"bullet_list_close", "ordered_list_close"}:
            ordered.pop()
        elif token.type == "list_item_open":
            number = ordered[-1]
            marker = "- " if number is None else f"{number}. "
            if number is not None:
                ordered[-1] = number + 1
            prefixes.append(marker)
            first_in_item = True
        elif token.type == "list_item_close":
            prefixes.pop()
        elif token.type == "blockquote_open":
            prefixes.append("> ")
        elif token.type == "blockquote_close":
            prefixes.pop()
        elif token.type == "paragraph_open":
            tight = token.hidden
        elif token.type == "heading_open":
            heading = int(token.tag[1])
        elif token.type == "inline":
            text = _inline_text(token.children or [])
            if heading:
                text = f"{text}\n{('=' if heading == 1 else '-') * min(len(text), 78)}"
                heading = 0
            blocks.append((_prefixed(text, prefixes, first_in_item), tight and bool(prefixes)))
            first_in_item = tight = False
        elif token.type in {"fence", "code_block"}:
            code = "\n".join("    " + line for line in token.content.rstrip("\n").split("\n"))
            blocks.append((_prefixed(code, prefixes, first_in_item), False))
        elif token.type == "hr":
            blocks.append(("-" * 20, False))
    return _join(blocks)


def _prefixed(text: str, prefixes: list[str], first_in_item: bool) -> str:
    """Indent a block under its list items; the item's marker goes on its first block only."""
    if not prefixes:
        return text
    lead = "".join(" " * len(p) if p != "> " else p for p in prefixes[:-1])
    last = prefixes[-1]
    first = lead + (last if first_in_item or last == "> " else " " * len(last))
    rest = lead + (last if last == "> " else " " * len(last))
    lines = text.split("\n")
    return "\n".join([first + lines[0], *(rest + line for line in lines[1:])])


def _join(blocks: list[tuple[str, bool]]) -> str:
    """Blank lines between blocks, except between the items of one tight list."""
    out: list[str] = []
    previous_tight = False
    for text, tight in blocks:
        if out:
            out.append("\n" if tight and previous_tight else "\n\n")
        out.append(text)
        previous_tight = tight
    return "".join(out) + "\n"


def _inline_text(children: list[Token]) -> str:
    parts: list[str] = []
    links: list[tuple[str, int]] = []
    for child in children:
        if child.type == "text" or child.type == "code_inline":
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif child.type == "link_open":
            links.append((str(child.attrGet("href") or ""), len(parts)))
        elif child.type == "link_close" and links:
            href, start = links.pop()
            label = "".join(parts[start:])
            target = href.removeprefix("mailto:")
            if target and target != label:
                parts.append(f" ({href if not href.startswith('mailto:') else target})")
        elif child.type == "image":
            alt = child.content or ""
            parts.append(f"[{alt}]" if alt else "")
    return "".join(parts)
