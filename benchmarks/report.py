"""What every benchmark prints and writes: aligned text tables, Markdown tables, and its
own `## Section` of docs/performance.md (the other sections are left as they are)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

DOCS = Path("docs/performance.md")
INTRO = ("# Performance\n\nFigures from the scripts in `benchmarks/`; each section says how "
         "to rerun it. Each script first compiles citesmail's modules to bytecode, as "
         "installing a wheel does, so that commands are timed as installed.\n\n")


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Empty cells become dashes; HTML-looking text is put in backticks."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    cells = [[re.sub(r"(<[^>]*>)", r"`\1`", cell) or "—" for cell in row] for row in rows]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def write_section(heading: str, section: str, docs: Path = DOCS) -> None:
    """Replace `## heading` (up to the next `## `) in docs (docs/performance.md), or
    append it."""
    text = docs.read_text(encoding="utf-8") if docs.exists() else INTRO
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)",
                         re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(text, encoding="utf-8")


def compile_bytecode() -> None:
    """Compile citesmail's modules to bytecode, as installing a wheel does, so a command
    run as a subprocess is timed as installed: an editable install under
    PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module at every start."""
    import compileall

    import citesmail

    compileall.compile_dir(Path(citesmail.__file__).parent, quiet=1)
