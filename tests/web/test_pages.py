"""The web pages' templates ship with the package and load from it, wherever it is."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

import citesmail
from citesmail.web.i18n import LANGUAGES, catalogue_path
from citesmail.web.pages import pages, studio_pages
from tests.conftest import ROOT

PACKAGE = Path(citesmail.__file__).parent


def test_every_page_template_is_package_data_and_loads_from_the_package() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "tool"]["setuptools"]["package-data"]["citesmail"]
    files = sorted((PACKAGE / "web" / "templates").rglob("*.j2"))
    assert {f.name for f in files} >= {"base.html.j2", "index.html.j2", "campaign.html.j2",
                                        "broken.html.j2", "test.html.j2"}
    listed = pages().list_templates()  # what the package loader finds
    for file in files:
        inside = file.relative_to(PACKAGE).as_posix()
        assert any(fnmatch(inside, pattern) for pattern in patterns), inside
        name = file.relative_to(PACKAGE / "web" / "templates").as_posix()
        assert name in listed
        # the studio's pages load in its environment (with `_()` and the date filters)
        env = studio_pages("fr") if name.startswith("preview/") else pages()
        assert env.get_template(name).filename == str(file)
    for lang in LANGUAGES:  # the studio's catalogues ship too
        inside = Path(catalogue_path(lang)).relative_to(PACKAGE).as_posix()
        assert any(fnmatch(inside, pattern) for pattern in patterns), inside


def test_pages_escape_what_they_show() -> None:
    shown = studio_pages("fr").get_template("preview/broken.html.j2").render(
        slug="<b>", errors=["<i>"], reload_script="")
    assert "&lt;b&gt;" in shown and "&lt;i&gt;" in shown and "<b>" not in shown
