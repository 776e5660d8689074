"""Reading campaign files: the format contract and every kind of bad input."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from citesmail.campaigns import load_campaign
from citesmail.errors import CampaignError, Problem
from tests.conftest import EXAMPLES, MINIMAL_REPLAY, REPLAY, run, write

PARIS = ZoneInfo("Europe/Paris")


def load(path: Path) -> object:
    return load_campaign(path, default_lang="fr", tz=PARIS)


def problems(path: Path) -> list[Problem]:
    with pytest.raises(CampaignError) as caught:
        load(path)
    return caught.value.problems


def test_example_replay_reads_with_its_speakers_in_file_order() -> None:
    campaign = load_campaign(EXAMPLES / f"{REPLAY}.md", default_lang="fr", tz=PARIS)
    assert campaign.slug == REPLAY
    assert campaign.kind == "replay"
    assert campaign.lang == "fr"
    assert campaign.event.starts == datetime(2023, 6, 12, 14, 0, tzinfo=PARIS)
    assert [s.name for s in campaign.speakers][:2] == ["Céline Mourier", "Lison Personnaz"]
    assert len(campaign.speakers) == 7
    assert campaign.body.startswith("Bonjour {{ recipient.first_name")


def test_local_datetime_takes_config_zone_and_offset_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "c.md", MINIMAL_REPLAY)
    assert load(path).event.starts.utcoffset().total_seconds() == 7200
    with_offset = MINIMAL_REPLAY.replace("2023-06-12T14:00:00", "2023-06-12T14:00:00Z")
    path = write(tmp_path / "d.md", with_offset)
    assert load(path).event.starts == datetime(2023, 6, 12, 14, 0, tzinfo=UTC)


def test_no_front_matter(tmp_path: Path) -> None:
    path = write(tmp_path / "c.md", "# Juste du Markdown\n")
    [problem] = problems(path)
    assert problem.line == 1
    assert "no front matter" in problem.message
    assert "+++" in problem.hint


def test_front_matter_not_closed(tmp_path: Path) -> None:
    path = write(tmp_path / "c.md", '+++\nkind = "replay"\n')
    assert "not closed" in problems(path)[0].message


def test_toml_syntax_error_reports_its_line_in_the_file(tmp_path: Path) -> None:
    broken = MINIMAL_REPLAY.replace('title = "Un titre"', "title = Un titre")
    path = write(tmp_path / "c.md", broken)
    [problem] = problems(path)
    assert problem.line == 5  # +++ is line 1, so the title is line 5 of the file
    assert problem.column is not None
    assert "TOML syntax error" in problem.message


def test_front_matter_nested_too_deep_is_refused_at_its_line(workspace: Path) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    write(workspace / "campaigns" / "c.md",
          MINIMAL_REPLAY.replace('title = "Un titre"', f'title = "Un titre"\nagenda = {deep}'))
    result = run("check", "c")
    assert result.exit_code == 1
    [error] = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert error.startswith(f"campaigns/c.md:6:{len('agenda = ') + 51}: error: arrays or "
                            "inline tables nested more than 50 deep")


def test_misspelt_required_key_is_one_error_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "c.md", MINIMAL_REPLAY.replace('title = "Un titre"',
                                                          'titel = "Un titre"'))
    [unknown] = problems(path)  # not a second one: "'title' is required"
    assert unknown.line == 5
    assert unknown.message == "unknown key 'titel'"
    assert unknown.hint == "did you mean 'title'?"


def test_unknown_key_like_no_allowed_one_lists_them_and_the_required_one(
        tmp_path: Path) -> None:
    path = write(tmp_path / "c.md", MINIMAL_REPLAY.replace('title = "Un titre"',
                                                          'heading = "Un titre"'))
    required, unknown = problems(path)
    assert required.message == "'title' is required"
    assert (unknown.line, unknown.message) == (5, "unknown key 'heading'")
    assert unknown.hint.startswith("fix its spelling or remove it (allowed here: agenda, ")


def test_unknown_key_inside_a_table(tmp_path: Path) -> None:
    path = write(tmp_path / "c.md", MINIMAL_REPLAY.replace(
        'video_url = "https://example.org/video"',
        'video_url = "https://example.org/video"\nslide_url = "https://x.org"'))
    [problem] = problems(path)
    assert problem.message == "unknown key 'replay.slide_url'"
    assert problem.line == 12
    assert "slides_url" in problem.hint


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path / "c.md", MINIMAL_REPLAY.replace('title = "Un titre"',
                                                          'title = "T"\nobjectives = "un"'))
    [problem] = problems(path)
    assert problem.line == 6
    assert "'objectives'" in problem.message
    assert "list" in problem.message


def test_replay_without_video_url(tmp_path: Path) -> None:
    path = write(tmp_path / "c.md", MINIMAL_REPLAY.replace(
        'video_url = "https://example.org/video"', 'slides_url = "https://example.org/s"'))
    [problem] = problems(path)
    assert problem.message == "'replay.video_url' is required"
    assert problem.line == 10  # the [replay] header


def test_event_without_starts(tmp_path: Path) -> None:
    text = MINIMAL_REPLAY.replace("starts = 2023-06-12T14:00:00", 'location = "En visio"')
    [problem] = problems(write(tmp_path / "c.md", text))
    assert "'event.starts' is required" in problem.message
    assert problem.line == 7


def test_newsletter_needs_items(tmp_path: Path) -> None:
    path = write(tmp_path / "c.md", '+++\nkind = "newsletter"\nsubject = "S"\ntitle = "T"\n+++\n')
    [problem] = problems(path)
    assert "at least one [[items]]" in problem.message
    assert problem.line == 2


def test_link_must_be_a_web_address(tmp_path: Path) -> None:
    path = write(tmp_path / "c.md", MINIMAL_REPLAY.replace("https://example.org/video",
                                                          "javascript:alert(1)"))
    [problem] = problems(path)
    assert "'replay.video_url'" in problem.message
    assert "https://" in problem.message


@pytest.mark.parametrize("subject", ['"Ligne\\nDeux"', '"Ligne\\rDeux"', '"""Ligne\nDeux"""'])
def test_line_break_in_subject_is_refused(tmp_path: Path, subject: str) -> None:
    path = write(tmp_path / "c.md", MINIMAL_REPLAY.replace('"Replay"', subject))
    [problem] = problems(path)
    assert "'subject'" in problem.message
    assert "one line" in problem.message
    assert problem.line == 3


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.md"
    path.write_bytes(MINIMAL_REPLAY.replace("Un titre", "Réunion").encode("cp1252"))
    [problem] = problems(path)
    assert "not UTF-8" in problem.message
    assert problem.line is not None and problem.line > 1
    assert "UTF-8" in problem.hint


def test_unknown_language(tmp_path: Path) -> None:
    path = write(tmp_path / "c.md", MINIMAL_REPLAY.replace('title = "Un titre"',
                                                          'title = "T"\nlang = "zz-qq"'))
    assert "unknown language" in problems(path)[0].message


def test_undefined_variable_in_body_is_reported_by_check(workspace: Path) -> None:
    write(workspace / "campaigns" / "bad.md",
          MINIMAL_REPLAY + "\nLigne 2\n{{ recipient.prenom }}\n")
    result = run("check", "bad")
    assert result.exit_code == 1
    [line] = [x for x in result.stderr.splitlines() if "bad.md" in x]
    assert line.startswith(f"{Path('campaigns/bad.md')}:16: error: undefined variable")
    assert "prenom" in line
    assert "recipient.first_name" in line


def test_unknown_top_level_variable_in_body(workspace: Path) -> None:
    write(workspace / "campaigns" / "bad.md", MINIMAL_REPLAY + "{{ secret_key }}\n")
    result = run("check", "bad")
    assert result.exit_code == 1
    assert "'secret_key' is undefined" in result.stderr


def test_jinja_syntax_error_in_body(workspace: Path) -> None:
    write(workspace / "campaigns" / "bad.md", MINIMAL_REPLAY + "{{ recipient.first_name \n")
    result = run("check", "bad")
    assert result.exit_code == 1
    assert "bad.md:14: error: template syntax error in the body" in result.stderr


def test_file_name_must_be_a_plain_slug(tmp_path: Path) -> None:
    path = write(tmp_path / "Lettre d'été (v2).md", MINIMAL_REPLAY)
    [problem] = problems(path)
    assert "not a valid campaign file name" in problem.message
    assert "lettre-d-ete-v2.md" in problem.hint


def test_unicode_line_separators_do_not_shift_line_numbers(tmp_path: Path) -> None:
    text = MINIMAL_REPLAY.replace('title = "Un titre"',
                                 'title = "Un\u2028titre"\nlede = "a\u0085b"\nbogus = 1')
    [problem] = problems(write(tmp_path / "c.md", text))
    assert problem.message == "unknown key 'bogus'" and problem.line == 7
    text = MINIMAL_REPLAY.replace('"Replay"', '"Re\u2028play"')
    assert "one line" in problems(write(tmp_path / "d.md", text))[0].message


def test_a_bare_date_is_not_an_event_time(tmp_path: Path) -> None:
    text = MINIMAL_REPLAY.replace("starts = 2023-06-12T14:00:00", "starts = 2023-06-12")
    [problem] = problems(write(tmp_path / "c.md", text))
    assert "'event.starts'" in problem.message and problem.line == 8


def test_end_before_start_is_compared_with_offsets(tmp_path: Path) -> None:
    def with_times(starts: str, ends: str) -> str:
        return MINIMAL_REPLAY.replace("starts = 2023-06-12T14:00:00",
                                      f"starts = {starts}\nends = {ends}")

    fine = write(tmp_path / "a.md", with_times("2023-06-12T14:00:00+02:00",
                                               "2023-06-12T13:30:00Z"))
    assert load(fine).event.ends.hour == 13
    wrong = write(tmp_path / "b.md", with_times("2023-06-12T12:00:00Z", "2023-06-12T13:00:00"))
    [problem] = problems(wrong)
    assert problem.message == "'event.ends' is before 'event.starts'"
    assert problem.line == 9


def test_utc_start_is_shown_in_the_display_zone(workspace: Path) -> None:
    write(workspace / "campaigns" / "utc.md",
          MINIMAL_REPLAY.replace("2023-06-12T14:00:00", "2023-06-12T12:00:00Z"))
    assert run("render", "utc").exit_code == 0
    text = (workspace / "out" / "utc.txt").read_text(encoding="utf-8")
    assert "lundi 12 juin 2023 à 14\u00a0h\u00a000" in text


@pytest.mark.parametrize("content", [b"", b"+++\n+++\n", b"\xef\xbb\xbf" + b"+++\r\n+++\r\n"])
def test_empty_front_matter_says_what_is_required(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "c.md"
    path.write_bytes(content)
    found = problems(path)
    assert found[0].line == 1
    if content:
        assert {p.message for p in found} >= {"'kind' is required", "'title' is required"}


def test_crlf_file_with_bom_reads(tmp_path: Path) -> None:
    path = tmp_path / "c.md"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL_REPLAY.replace("\n", "\r\n").encode())
    campaign = load(path)
    assert campaign.title == "Un titre"
    assert "\r" not in campaign.body
