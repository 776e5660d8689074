"""The studio's catalogues: every word the templates and the code mark is translated in
French and in English (none fuzzy: a fuzzy entry is not compiled), the commands that
docs/studio.md gives to update them leave them as committed, and the studio speaks the
workspace language."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from citesmail.config import Settings
from citesmail.web.i18n import LANGUAGES, catalogue_path, studio_language, translations
from tests.conftest import ROOT


def extracted() -> set[str | tuple[str, ...]]:
    """What `pybabel extract -F babel.cfg` finds, as msgids."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config)
    return {found[2] if isinstance(found[2], str) else tuple(found[2])
            for found in extract_from_dir(str(ROOT), method_map, options_map)}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_extracted_word_is_translated(lang: str) -> None:
    found = extracted()
    assert "Campaigns" in found and ("%(num)s contact", "%(num)s contacts") in found
    with open(catalogue_path(lang), "rb") as source:
        catalogue = read_po(source, locale=lang)
    ids = {message.id if isinstance(message.id, str) else tuple(message.id)
           for message in catalogue if message.id}
    assert found - ids == set(), f"not in the {lang} catalogue"
    assert ids - found == set(), f"left in the {lang} catalogue, no longer used"
    untranslated = [message.id for message in catalogue if message.id and (
        not all(message.string) if isinstance(message.string, tuple) else not message.string)]
    assert untranslated == []
    assert [message.id for message in catalogue if message.id and message.fuzzy] == []


def documented_commands() -> list[list[str]]:
    """The pybabel lines of docs/studio.md's block on adding words."""
    docs = (ROOT / "docs" / "studio.md").read_text(encoding="utf-8")
    block = re.search(r"To add or change words.*?```\n(.*?)```", docs, re.S)
    assert block is not None
    return [line.split() for line in block[1].splitlines() if line.startswith("pybabel ")]


def test_the_documented_update_leaves_the_catalogues_as_committed(tmp_path: Path) -> None:
    commands = documented_commands()
    assert [command[1] for command in commands] == ["extract", "update"]
    locale = tmp_path / "locale"
    shutil.copytree(ROOT / "src" / "citesmail" / "locale", locale)
    pybabel = str(Path(sys.executable).parent / "pybabel")
    for command in commands:
        command = [pybabel, *(str(tmp_path / part) if part == "studio.pot" else
                              str(locale) if part == "src/citesmail/locale" else part
                              for part in command[1:])]
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    for lang in LANGUAGES:
        committed = Path(catalogue_path(lang)).read_text(encoding="utf-8")
        updated = (locale / lang / "LC_MESSAGES" / "studio.po").read_text(encoding="utf-8")
        assert _without_date(updated) == _without_date(committed), \
            f"the {lang} catalogue is not as docs/studio.md's commands write it: run them"


def _without_date(catalogue: str) -> str:
    return re.sub(r'"POT-Creation-Date: [^"]*"', "", catalogue)


def test_the_catalogues_are_read_from_their_po_files() -> None:
    assert translations("fr").gettext("Campaigns") == "Campagnes"
    assert translations("en").gettext("Campaigns") == "Campaigns"
    assert translations("fr").ngettext("%(num)s contact", "%(num)s contacts", 2) == \
        "%(num)s contacts"
    assert not list(Path(catalogue_path("fr")).parent.glob("*.mo"))  # no binary kept


@pytest.mark.parametrize(("lang", "studio"), [("fr", "fr"), ("fr-CA", "fr"), ("en", "en"),
                                               ("en_GB", "en"), ("de", "en")])
def test_the_studio_speaks_the_workspace_language(lang: str, studio: str) -> None:
    assert studio_language(Settings.model_validate({"campaigns": {"lang": lang}})) == studio
    assert studio_language(Settings()) == "fr"
