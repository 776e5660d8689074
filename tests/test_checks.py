"""One check of a campaign (citesmail.checks): what `check`, the preview and the timing
step of send and schedule share."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from citesmail.checks import check_campaign, check_settings, check_timing
from citesmail.config import database_exists, load_settings
from citesmail.db import open_database
from tests.conftest import EVENT, NEWSLETTER, REPLAY, write


def test_a_campaign_that_renders_is_returned_with_its_findings(workspace: Path) -> None:
    settings = load_settings(workspace / "config.toml", environ={})
    found = check_campaign(workspace / "campaigns" / f"{REPLAY}.md", settings)
    assert found.rendered is not None and found.rendered.slug == REPLAY
    assert found.errors == ()
    assert [w.message for w in found.warnings] == [  # no database yet: no segment either
        "audience: no segment 'partenaires-aura' yet: no contacts have been imported"]


def test_a_broken_file_has_only_the_errors_that_stopped_it(workspace: Path) -> None:
    settings = load_settings(workspace / "config.toml", environ={})
    path = write(workspace / "campaigns" / "casse.md", "pas de front matter\n")
    found = check_campaign(path, settings)
    assert found.rendered is None and found.warnings == ()
    assert [p.message.split(":")[0] for p in found.errors] == ["no front matter"]


def test_timing_late_is_an_error_early_a_warning(workspace: Path) -> None:
    settings = load_settings(workspace / "config.toml", environ={})
    before = datetime(2023, 6, 1, tzinfo=UTC)
    replay = check_campaign(workspace / "campaigns" / f"{REPLAY}.md", settings, now=before)
    assert replay.rendered is not None  # rendered all the same, to be looked at
    assert ["not over yet" in p.message for p in replay.errors] == [True]
    after = datetime(2027, 2, 1, tzinfo=UTC)
    event = check_campaign(workspace / "campaigns" / f"{EVENT}.md", settings, now=after)
    assert event.errors == ()
    assert any("is over" in p.message for p in event.warnings)
    assert event.rendered is not None
    assert check_timing(event.rendered.campaign, after).warnings == tuple(
        p for p in event.warnings if "is over" in p.message)


def test_the_audience_is_checked_against_the_database_or_its_absence(
        workspace: Path) -> None:
    settings = load_settings(workspace / "config.toml", environ={})
    path = workspace / "campaigns" / f"{NEWSLETTER}.md"
    assert not database_exists(settings.database_url)  # no file yet: no segment either
    [none_yet] = check_campaign(path, settings).warnings
    assert none_yet.message == ("audience: no segment 'abonnes-lettre' yet: no contacts "
                                "have been imported")
    assert none_yet.hint == ("import contacts (citesmail contacts import FILE --list NAME), "
                             "then citesmail segments add abonnes-lettre --list NAME")
    db = open_database(settings.database_url)
    try:
        assert database_exists(settings.database_url)
        [warning] = check_campaign(path, settings, db).warnings
    finally:
        db.close()
    assert warning.message == "audience: unknown segment 'abonnes-lettre'"
    assert warning.path == path


def test_settings_findings_are_apart(workspace: Path) -> None:
    settings = load_settings(workspace / "config.toml", environ={
        "CITESMAIL_UNSUBSCRIBE_BASE_URL": "http://lists.example.org"})
    shared = check_settings(settings)
    assert shared.errors == ()
    assert [p.message.split(":")[0] for p in shared.warnings] == [
        "example values still configured", "[unsubscribe] base_url is not https",
        "DKIM signing is off"]


def test_a_dark_logo_without_a_light_one_is_a_warning(workspace: Path) -> None:
    settings = load_settings(workspace / "config.toml", environ={
        "CITESMAIL_ORGANIZATION_LOGO_DARK_URL": "https://example.org/dark.png"})
    warnings = [p.message for p in check_settings(settings).warnings]
    assert ("[organization] logo_dark_url is set without logo_url: no logo is shown, in "
            "either mode") in warnings
    both = load_settings(workspace / "config.toml", environ={
        "CITESMAIL_ORGANIZATION_LOGO_DARK_URL": "https://example.org/dark.png",
        "CITESMAIL_ORGANIZATION_LOGO_URL": "https://example.org/light.png"})
    assert not any("logo" in p.message for p in check_settings(both).warnings)


def test_check_says_which_links_will_be_counted(workspace: Path) -> None:
    settings = load_settings(workspace / "config.toml", environ={})
    found = check_campaign(workspace / "campaigns" / f"{NEWSLETTER}.md", settings)
    [note] = found.notes
    assert note.message == (
        "4 links will be counted (clicks = aggregate): "
        "https://example.org/replays/cites-de-l-emploi-2023, "
        "https://example.org/evenements/emploi-des-jeunes, "
        "https://example.org/ressources/conseils-citoyens-emploi, https://example.org; "
        "not counted: unsubscribe, preference, web view, calendar")
    off = load_settings(workspace / "config.toml", environ={"CITESMAIL_TRACKING_CLICKS": "off"})
    [note] = check_campaign(workspace / "campaigns" / f"{NEWSLETTER}.md", off).notes
    assert note.message == "no link will be counted (clicks = off)"
