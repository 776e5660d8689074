"""Folded text: what `=` in a segment condition and `contacts list --search` compare.

'Délégué  du Préfet' and 'delegue du prefet' fold to the same text: no case, no accents
(letters decomposed, their marks dropped), œ and æ spelt out, runs of spaces as one.
The database keeps a folded copy of the fields compared (the contacts' `*_key` columns),
so a condition is a plain equality in SQL: the same on SQLite and PostgreSQL (no
extension, no function of our own in the database) and served by an index.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae"})  # after casefold: Œ and Æ are these
# The blocks of combining diacritical marks: the accents a decomposed letter leaves
# (the marks of other scripts, such as Devanagari vowel signs, are letters' parts: kept).
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")


def fold(text: str) -> str:
    if text.isascii():  # most addresses, many names: the fast way, same result
        return " ".join(text.lower().split())
    lowered = text.casefold()
    if "œ" in lowered or "æ" in lowered:  # a rare translate: it is slow on every text
        lowered = lowered.translate(_LIGATURES)
    decomposed = unicodedata.normalize("NFKD", lowered)
    return " ".join(_MARKS.sub("", decomposed).split())


# Roles, territories, organisations and attribute values repeat across contacts.
_fold_repeated = lru_cache(maxsize=65_536)(fold)


def fold_value(text: str | None) -> str | None:
    return None if text is None else _fold_repeated(text)


def contact_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    """The folded columns of a contact from its values (email, first_name, last_name,
    organization, role, territory, attributes); absent or None values give None."""
    attributes: Mapping[str, str] = values.get("attributes") or {}
    searched = (values.get(name) for name in ("first_name", "last_name", "email",
                                              "organization"))
    return {"role_key": fold_value(values.get("role")),
            "territory_key": fold_value(values.get("territory")),
            "organization_key": fold_value(values.get("organization")),
            "attributes_key": {name: _fold_repeated(value)
                               for name, value in attributes.items()},
            "search_key": fold(" ".join(text for text in searched if text))}
