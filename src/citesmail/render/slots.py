"""Recipient placeholders: rendered once per campaign as tokens, filled per recipient.

`{{ recipient.first_name | default("Madame, Monsieur") }}` renders as a token such as
`@@cm0@@`; the table remembers (field, default) for each token, so the per-recipient fill
is a plain substitution into text built once.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

TOKEN = re.compile(r"@@cm(\d+)@@")
RECIPIENT_FIELDS = ("first_name", "last_name", "email", "organization")
LINK_FIELDS = ("unsubscribe_url", "webview_url")


class Slot(str):
    """A token standing for a recipient's value; `default` makes a new token."""

    table: SlotTable
    field: str

    def with_default(self, default: str) -> Slot:
        return self.table.slot(self.field, default)


class SlotTable:
    def __init__(self) -> None:
        self.slots: list[tuple[str, str]] = []
        self._tokens: dict[tuple[str, str], Slot] = {}

    def slot(self, field: str, default: str = "") -> Slot:
        key = (field, default)
        token = self._tokens.get(key)
        if token is None:
            token = Slot(f"@@cm{len(self.slots)}@@")
            token.table, token.field = self, field
            self.slots.append(key)
            self._tokens[key] = token
        return token


class RecipientSlots:
    """What `recipient` is in templates and campaign bodies."""

    def __init__(self, table: SlotTable) -> None:
        self._table = table

    def __getattr__(self, name: str) -> Slot:
        if name in RECIPIENT_FIELDS:
            return self._table.slot(name)
        raise AttributeError(name)


class LinkSlots:
    def __init__(self, table: SlotTable) -> None:
        self.unsubscribe = table.slot("unsubscribe_url")
        self.webview = table.slot("webview_url")


def fill(
    template: str,
    slots: tuple[tuple[str, str], ...],
    values: Mapping[str, str | None],
    *,
    escape: bool,
) -> str:
    """Replace every token with the recipient's value (or the slot's default)."""
    resolved = [values.get(field) or default for field, default in slots]
    if escape:
        resolved = [html.escape(value, quote=True) for value in resolved]
    return TOKEN.sub(lambda match: resolved[int(match.group(1))], template)
