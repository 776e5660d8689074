"""slots.py: what is left of a token after a filter is found however the text is made."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from citesmail.render.slots import (
    MANGLED,
    TOKEN,
    RecipientValueError,
    check_tokens,
    reserved_at,
)

PIECES = st.sampled_from(["@", "%40", "&#64;", "&#64", "c", "C", "m", "M", "cm", "@@cm0@@",
                          "%40%40cm1", " ", "\n", "x", "%4", "&"])


def _refused(text: str) -> bool:
    try:
        check_tokens(text)
    except RecipientValueError:
        return True
    return False


@settings(max_examples=500)
@given(st.lists(PIECES, max_size=12).map("".join))
@example("@@CM0@@")
@example("x @&#64;cm0")
@example("&#64;@Cm @@cm1@@")
@example("%40@cM")
def test_leftovers_are_found_as_the_whole_pattern_finds_them(text: str) -> None:
    """With or without an encoded '@' (only then is the whole pattern needed)."""
    first = MANGLED.search(text)
    assert reserved_at(text) == (None if first is None else (
        text.count("\n", 0, first.start()) + 1,
        first.start() - text.rfind("\n", 0, first.start())))
    assert _refused(text) == any(TOKEN.match(text, found.start()) is None
                                 for found in MANGLED.finditer(text))
