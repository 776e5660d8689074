"""Rows printed as columns that fit the terminal: values too long are cut with "…"."""

from __future__ import annotations

import shutil
from collections.abc import Sequence

GAP = "  "
NOT_A_TERMINAL = 100  # columns when the output is a pipe or a file (unless $COLUMNS)
NARROWEST = 6


def terminal_width() -> int:
    return shutil.get_terminal_size((NOT_A_TERMINAL, 24)).columns


def fit(natural: Sequence[int], width: int) -> list[int]:
    """Column widths within `width` (gaps included): the natural ones when they fit,
    else the widest column narrowed first, down to a few characters."""
    widths = list(natural)
    room = width - len(GAP) * (len(widths) - 1)
    while sum(widths) > room and max(widths) > NARROWEST:
        widths[widths.index(max(widths))] -= 1
    return widths


def cut(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def line(values: Sequence[str], widths: Sequence[int]) -> str:
    return GAP.join(cut(v, w).ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()
