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
# A token changed by a filter (upper, urlencode, ...) no longer fills: find such leftovers.
MANGLED = re.compile(r"(?i)(?:@|%40|&#64;)(?:@|%40|&#64;)cm")
# MANGLED where '@' is not encoded: searched for as the literal '@@', a fifth of the time
# MANGLED takes over a page (and the Atom feed is the size of all the pages).
_PLAIN_MANGLED = re.compile(r"@@[cC][mM]")
# `lists`: the titles of the public lists through which the recipient is in the send's
# segment ("" when none: the slot's default is printed).
RECIPIENT_FIELDS = ("first_name", "last_name", "email", "organization", "lists")
LINK_FIELDS = ("unsubscribe_url", "webview_url", "preferences_url", "calendar_url",
               "google_calendar_url", "outlook_calendar_url")
# Values made by citesmail itself as HTML (the pixel of a consenting contact's message):
# not escaped. No template can name them (they are neither recipient nor link fields).
RAW_FIELDS = frozenset({"open_pixel"})
USE = ("recipient values are filled in per recipient: print them as they are, "
       "optionally with default(\"text\")")


class RecipientValueError(Exception):
    """A recipient placeholder was used in a way that cannot be filled per recipient."""


class Slot(str):
    """A token standing for a recipient's value; `default` makes a new token.

    It is text only when printed: tests, indexing and slicing would act on the token,
    not on the recipient's value, so they are refused.
    """

    table: SlotTable
    field: str

    def with_default(self, default: object) -> Slot:
        if isinstance(default, Slot):
            raise RecipientValueError(
                f"default() of recipient.{self.field} must be text, not another recipient "
                "value")
        return self.table.slot(self.field, str(default))

    def __bool__(self) -> bool:
        raise RecipientValueError(f"recipient.{self.field} cannot be tested in {{% if %}}; "
                                  + USE)

    def __getitem__(self, key: object) -> str:
        raise RecipientValueError(f"recipient.{self.field} cannot be indexed; " + USE)


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

    def __str__(self) -> str:
        raise RecipientValueError("print one value, e.g. recipient.first_name, not recipient")

    def __dir__(self) -> list[str]:
        """The fields a template may use (what a misspelt one is compared with)."""
        return list(RECIPIENT_FIELDS)


class LinkSlots:
    def __init__(self, table: SlotTable) -> None:
        self.unsubscribe = table.slot("unsubscribe_url")
        self.webview = table.slot("webview_url")
        self.preferences = table.slot("preferences_url")  # the preference centre
        self.calendar = table.slot("calendar_url")  # the web view's event.ics
        # Short signed links that `serve` redirects to Google's and Outlook.com's pages:
        # the pages' own addresses run to 600 characters, too long for the text part.
        self.google_calendar = table.slot("google_calendar_url")
        self.outlook_calendar = table.slot("outlook_calendar_url")


def reserved_at(text: str) -> tuple[int, int] | None:
    """(line, column), from 1, of the first text an author wrote that reads as a token
    (`@@cm`, also percent- or entity-encoded): it would be filled, or refused, as one."""
    found = _mangled(text).search(text)
    if found is None:
        return None
    start = found.start()
    return text.count("\n", 0, start) + 1, start - text.rfind("\n", 0, start)


def _mangled(text: str) -> re.Pattern[str]:
    """MANGLED, or the pattern that finds the same in a text with no encoded '@'."""
    return MANGLED if "%40" in text or "&#64;" in text else _PLAIN_MANGLED


def check_tokens(text: str) -> None:
    """Every placeholder left must be whole: a filter applied to one would leak it."""
    for match in _mangled(text).finditer(text):
        if not TOKEN.match(text, match.start()):
            raise RecipientValueError("a filter other than default() was applied to a "
                                      "recipient value; " + USE)


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
        resolved = [value if field in RAW_FIELDS else html.escape(value, quote=True)
                    for value, (field, _) in zip(resolved, slots, strict=True)]
    return TOKEN.sub(lambda match: resolved[int(match.group(1))], template)
