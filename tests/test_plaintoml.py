"""plaintoml.py reads what tomllib reads, the same way, or leaves it to tomllib."""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from citesmail.campaigns.reader import split_front_matter
from citesmail.plaintoml import read_plain
from tests.conftest import EXAMPLES, ROOT

KEYS = st.sampled_from(["kind", "title", "event", "speakers", "a-b", "x_1", "7", "true"])
# Text with what TOML treats apart: quotes, backslashes, control characters, brackets,
# '#', and some of the rest of Unicode.
TEXTS = st.one_of(
    st.text(st.sampled_from(['a', 'é', ' ', '\t', '#', '[', ']', ',', '=', "'", 'Z']),
            max_size=6),
    st.text(st.sampled_from(['a', '"', '\\', 't', 'u', '\x00', '\x1f', '\x7f', '\n', '\r',
                             '\u2028']), max_size=4))
MOMENTS = st.from_regex(r"\A[0-9]{4}-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-6][0-9]:[0-6]"
                        r"[0-9](\.[0-9]{1,3})?(Z|[+-]0[0-9]:00)?\Z")
VALUES = st.one_of(TEXTS.map(lambda text: f'"{text}"'), MOMENTS,
                   st.sampled_from(["true", "false", "True", "1", "-2", "0.5", "'lit'",
                                    '"""long"""', "[]", "{}", '"\\u00e9"']),
                   st.lists(TEXTS.map(lambda text: f'"{text}"'), max_size=3).flatmap(
                       lambda items: st.sampled_from([", ", ",\n  ", ","]).map(
                           lambda comma: "[" + comma.join(items) + comma.strip(" ") + "]")))
PAIRS = st.tuples(KEYS, st.sampled_from([" = ", "=", "\t=  "]), VALUES,
                  st.sampled_from(["", " ", " # note", "#\x01"])).map("".join)
LINES = st.one_of(  # mostly key = value, so that many documents are TOML
    PAIRS, PAIRS, PAIRS, KEYS.map(lambda key: f"[{key}]"), KEYS.map(lambda key: f"[[{key}]]"),
    st.sampled_from(["", "# a comment", "  ", "[ event ]", "a.b = 1", "key", "= 1"]))


def typed(value: Any) -> Any:
    """The value with the type of each of its parts: True is not 1, nor a str a datetime."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return type(value), value


@settings(max_examples=1500, deadline=None)
@given(lines=st.lists(LINES, max_size=12), ending=st.sampled_from(["", "\n", "\r\n"]))
@example(lines=["[[speakers]]", 'name = "A"', "[[speakers]]", 'name = "B"'], ending="")
@example(lines=['starts = 2027-02-30T10:00:00'], ending="\n")
@example(lines=['list = [ "a]b" ,', '"c", ]'], ending="\n")
@example(lines=['kind = "a"', 'kind = "b"'], ending="\n")
@example(lines=['title = "a\\\\b"', 'list = ["\\t"]'], ending="\n")
def test_plain_documents_read_as_tomllib_reads_them(lines: list[str], ending: str) -> None:
    assert_agrees(ending.join(lines) + ending)


def test_each_character_in_each_place() -> None:
    for code in [*range(128), 0xE9, 0x2028, 0xFEFF]:
        char = chr(code)
        for document in (f'k = "{char}"\n', f'k = ["{char}", "{char}"]\n',
                         f'k = [{char}"a",{char}]\n', f'k = true #{char}\n', f'[t{char}]\n',
                         f'[[t{char}]]\n',
                         f'k{char} = false\n', f'{char}k = "v"\n',
                         f'k = 2027-01-19T10:00:0{char}\n'):
            assert_agrees(document)


def assert_agrees(document: str) -> None:
    """read_plain gives what tomllib gives, or gives up; never a document tomllib refuses."""
    plain = read_plain(document)
    try:
        expected = tomllib.loads(document)
    except tomllib.TOMLDecodeError:
        assert plain is None, document
        return
    if plain is not None:
        assert typed(plain) == typed(expected), document


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.md")), ids=lambda path: path.stem)
def test_the_example_campaigns_are_read_without_tomllib(path: Path) -> None:
    front = split_front_matter(path.read_text("utf-8"), path)[0]
    plain = read_plain(front)
    assert plain is not None and typed(plain) == typed(tomllib.loads(front))


def test_what_is_not_plain_is_left_to_tomllib() -> None:
    assert read_plain('title = "Caf\\u00e9"\n') is None  # an escape
    assert read_plain("count = 3\n") is None  # a number
    assert read_plain("a = 1\r\n") is None
    assert read_plain("[event]\n[event]\n") is None  # tomllib says why
    assert read_plain(ROOT.joinpath("config.example.toml").read_text("utf-8")) is None
    assert read_plain('when = 2027-01-19T10:00:00\n') == {"when": datetime(2027, 1, 19, 10)}
