"""TOML mistakes said at the line where they were made: syntax errors and misspelt keys,
in campaign front matter and in config.toml alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from citesmail.errors import CitesmailError
from citesmail.tomlfile import parse_toml
from tests.conftest import MINIMAL_REPLAY, run, write

# (the two warnings: the example values of the test workspace's config.toml, and DKIM
# signing off)
SUMMARY = ("1 campaign checked: 1 error, 2 warnings (1 could not be rendered: its "
           "warnings show once its errors are fixed)")
HINT = "check quotes, brackets and '=' on that line"


def check_errors(workspace: Path, front_matter_change: tuple[str, str]) -> list[str]:
    """The lines `citesmail check` prints for a campaign with one change."""
    write(workspace / "campaigns" / "b.md", MINIMAL_REPLAY.replace(*front_matter_change))
    result = run("check", "b")
    assert result.exit_code == 1
    return result.stderr.splitlines()


@pytest.mark.parametrize(("change", "error"), [
    # The array opened on line 5 runs into the next key (tomllib: line 6 or 7).
    (('title = "Un titre"', 'agenda = ["a",\ntitle = "Un titre"'),
     "campaigns/b.md:5:10: error: TOML syntax error: unclosed array"),
    (('title = "Un titre"', 'agenda = ["a", "b"\ntitle = "Un titre"'),
     "campaigns/b.md:5:10: error: TOML syntax error: unclosed array"),
    (('title = "Un titre"', 'title = "Un titre"\nagenda = [\n  "a",\n  ["b", "c",\n'),
     "campaigns/b.md:8:3: error: TOML syntax error: unclosed array"),
    # ... or into the next table.
    (('title = "Un titre"\n', 'title = "Un titre"\nagenda = ["a",\n  "b"\n'),
     "campaigns/b.md:6:10: error: TOML syntax error: unclosed array"),
    # A string left open on line 5 is noticed at its end, or the front matter's.
    (('title = "Un titre"', 'title = "Un titre'),
     "campaigns/b.md:5:9: error: TOML syntax error: unclosed string"),
    (('title = "Un titre"', "title = 'Un titre"),
     "campaigns/b.md:5:9: error: TOML syntax error: unclosed string"),
    (('title = "Un titre"', 'title = """Un titre'),
     "campaigns/b.md:5:9: error: TOML syntax error: unclosed string"),
    # Where tomllib is right, its place and words are kept.
    (('title = "Un titre"', 'agenda = [\n  "a",\n  "b" "c",\n]'),
     "campaigns/b.md:7:7: error: TOML syntax error: unclosed array"),
    (('title = "Un titre"', "title = Un titre"),
     "campaigns/b.md:5:9: error: TOML syntax error: invalid value"),
])
def test_a_syntax_error_is_reported_where_it_was_made(
        workspace: Path, change: tuple[str, str], error: str) -> None:
    assert check_errors(workspace, change) == [f"{error} — {HINT}", SUMMARY]


def test_a_syntax_error_in_config_is_reported_where_it_was_made(workspace: Path) -> None:
    config = workspace / "config.toml"
    text = config.read_text(encoding="utf-8")
    line = text.split("\n").index("[smtp]") + 2  # the key after [smtp]
    config.write_text(text.replace("[smtp]\n", '[smtp]\nhost = "relais.example.org\n'),
                      encoding="utf-8")
    result = run("check")
    assert result.exit_code == 1
    assert result.stderr == (f"config.toml:{line}:8: error: TOML syntax error: unclosed "
                             f"string — {HINT}\n")


def test_a_bracket_or_quote_inside_a_string_or_comment_is_not_a_mistake() -> None:
    text = 'a = "[ {"  # ] "\nb = [\'}\', """\n]""", # [\n]\nc = [\n\nd = 1\n'
    with pytest.raises(CitesmailError) as caught:
        parse_toml(text, "x.toml")
    assert str(caught.value) == f"x.toml:5:5: TOML syntax error: unclosed array — {HINT}"


def test_a_misspelt_key_gets_the_key_meant_and_no_second_error(workspace: Path) -> None:
    errors = check_errors(workspace, ('subject = "Replay"', 'subjet = "Replay"'))
    assert errors == ["campaigns/b.md:3: error: unknown key 'subjet' — did you mean "
                      "'subject'?", SUMMARY]


def test_misspelt_keys_in_tables_get_the_key_meant(workspace: Path) -> None:
    write(workspace / "campaigns" / "b.md", MINIMAL_REPLAY
          .replace("starts =", "start =")
          .replace("video_url", "vido_url")
          .replace("+++\nBonjour", '[[speakers]]\nnmae = "A"\n+++\nBonjour'))
    result = run("check", "b")
    assert result.stderr.splitlines()[:-1] == [
        "campaigns/b.md:8: error: unknown key 'event.start' — did you mean 'starts'?",
        "campaigns/b.md:11: error: unknown key 'replay.vido_url' — did you mean "
        "'video_url'?",
        "campaigns/b.md:13: error: unknown key 'speakers[0].nmae' — did you mean 'name'?"]


def test_an_unknown_key_like_no_other_lists_the_keys_allowed(workspace: Path) -> None:
    errors = check_errors(workspace, ('subject = "Replay"', 'subject = "Replay"\nzz = 1'))
    assert errors[0] == (
        "campaigns/b.md:4: error: unknown key 'zz' — fix its spelling or remove it (allowed "
        "here: agenda, archive, audience, event, items, kind, lang, lede, objectives, preheader, "
        "public, replay, speakers, subject, title)")


def test_misspelt_config_keys_and_sections_get_the_name_meant(workspace: Path) -> None:
    config = workspace / "config.toml"
    text = config.read_text(encoding="utf-8")
    lines = text.split("\n")
    config.write_text(text.replace("[smtp]\n", "[smtp]\nprot = 25\n"), encoding="utf-8")
    result = run("check")
    assert result.exit_code == 1
    assert result.stderr == (f"config.toml:{lines.index('[smtp]') + 2}: error: unknown "
                             "key 'smtp.prot' — did you mean 'port'?\n")
    config.write_text(text + "\n[smpt]\n", encoding="utf-8")
    result = run("check")
    assert result.stderr == (f"config.toml:{len(lines) + 1}: error: unknown key 'smpt' — "
                             "did you mean 'smtp'?\n")
