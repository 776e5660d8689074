"""TOML mistakes said at the line where they were made: misspelt keys, in campaign front
matter and in config.toml alike."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import MINIMAL_REPLAY, run, write

SUMMARY = ("1 campaign checked: 1 error, 0 warnings (1 could not be rendered: its warnings "
           "show once its errors are fixed)")


def check_errors(workspace: Path, front_matter_change: tuple[str, str]) -> list[str]:
    """The lines `citesmail check` prints for a campaign with one change."""
    write(workspace / "campaigns" / "b.md", MINIMAL_REPLAY.replace(*front_matter_change))
    result = run("check", "b")
    assert result.exit_code == 1
    return result.stderr.splitlines()


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
        "here: agenda, audience, event, items, kind, lang, lede, objectives, preheader, "
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
