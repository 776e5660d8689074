"""writer.py: a new folder appears whole; an existing one gets only its changed files;
nothing is written outside the folder."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from citesmail.errors import CitesmailError
from citesmail.publish import write_site
from citesmail.publish.writer import MANIFEST

FILES = {"index.html": b"<p>index</p>", "feed.xml": b"<feed/>",
         "une-annonce/index.html": b"<p>page</p>", "une-annonce/event.ics": b"BEGIN:VCALENDAR"}


@pytest.fixture
def strict_umask() -> Iterator[int]:
    """A umask that would make files private: the site's files are still 0644."""
    previous = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_folder_appears_whole(tmp_path: Path, strict_umask: int) -> None:
    site = tmp_path / "publics" / "site"
    done = write_site(site, FILES)
    assert done.written == sorted(FILES) and done.unchanged == 0 and done.removed == []
    assert sorted(os.listdir(tmp_path / "publics")) == ["site"]  # no temporary folder left
    for name, data in FILES.items():
        assert (site / name).read_bytes() == data
        assert _mode(site / name) == 0o644
    assert (site / MANIFEST).read_text("utf-8").split() == sorted(FILES)
    assert _mode(site) == _mode(site / "une-annonce") == 0o777 & ~strict_umask
    again = write_site(site, FILES)  # the folder exists now: compared, not rewritten
    assert again.written == [] and again.unchanged == len(FILES)


def test_a_new_folder_that_cannot_be_completed_is_not_left_half_made(tmp_path: Path) -> None:
    clash = {"une-annonce": b"a file", "une-annonce/index.html": b"in a folder of that name"}
    with pytest.raises(OSError):
        write_site(tmp_path / "site", clash)
    assert os.listdir(tmp_path) == []


def test_a_name_outside_a_new_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CitesmailError):
        write_site(tmp_path / "site", {**FILES, "../dehors.html": b"no"})
    assert os.listdir(tmp_path) == []


def test_an_existing_folder_keeps_its_own_mode(tmp_path: Path) -> None:
    """An empty folder made for the site (by hand, with its permissions) is written
    into, not replaced."""
    site = tmp_path / "site"
    site.mkdir()
    site.chmod(0o750)
    write_site(site, FILES)
    assert _mode(site) == 0o750
    assert (site / "une-annonce" / "index.html").read_bytes() == FILES["une-annonce/index.html"]


def test_a_link_inside_an_existing_folder_is_not_followed_out(tmp_path: Path) -> None:
    site, elsewhere = tmp_path / "site", tmp_path / "ailleurs"
    site.mkdir()
    elsewhere.mkdir()
    (site / "une-annonce").symlink_to(elsewhere)
    with pytest.raises(CitesmailError):
        write_site(site, FILES)
    assert os.listdir(elsewhere) == []


def test_a_manifest_naming_a_file_outside_is_refused(tmp_path: Path) -> None:
    """The list of what publish wrote is read back from the folder: a name in it that
    leads outside is not removed."""
    site, victim = tmp_path / "site", tmp_path / "garder.txt"
    write_site(site, FILES)
    victim.write_text("à garder", encoding="utf-8")
    (site / MANIFEST).write_text("../garder.txt\n", encoding="utf-8")
    with pytest.raises(CitesmailError):
        write_site(site, FILES)
    assert victim.read_text(encoding="utf-8") == "à garder"


@pytest.mark.parametrize("name", ["../garder.txt", "une-annonce/../../garder.txt", "{victim}"])
def test_a_manifest_naming_a_file_outside_is_refused_however_named(tmp_path: Path,
                                                                   name: str) -> None:
    site, victim = tmp_path / "site", tmp_path / "garder.txt"
    write_site(site, FILES)
    victim.write_text("à garder", encoding="utf-8")
    (site / MANIFEST).write_text(name.format(victim=victim) + "\n", encoding="utf-8")
    with pytest.raises(CitesmailError):
        write_site(site, FILES)
    assert victim.read_text(encoding="utf-8") == "à garder"


def test_a_link_to_a_file_outside_is_not_written_through(tmp_path: Path) -> None:
    site, victim = tmp_path / "site", tmp_path / "garder.txt"
    write_site(site, FILES)
    victim.write_text("à garder", encoding="utf-8")
    (site / "feed.xml").unlink()
    (site / "feed.xml").symlink_to(victim)
    with pytest.raises(CitesmailError):
        write_site(site, FILES)
    assert victim.read_text(encoding="utf-8") == "à garder"
