"""The web apps' own pages: Jinja templates in this package's templates/ folder, every
value escaped unless marked safe. The studio's pages (templates/preview/) speak the
workspace language through Jinja's i18n extension; the public pages use their own word
tables (render/labels.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache, partial

from jinja2 import Environment, PackageLoader, StrictUndefined

from .i18n import day, hour, number, translations


def _environment(*extensions: str) -> Environment:
    return Environment(loader=PackageLoader("citesmail.web", "templates"), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                       extensions=list(extensions))


@cache
def pages() -> Environment:
    """Built on first use: a command that serves no page never reads the templates."""
    return _environment()


@cache
def studio_pages(lang: str) -> Environment:
    """The studio's environment in one language: `_()` and the date and
    number filters speak it."""
    env = _environment("jinja2.ext.i18n")
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.globals["lang"] = lang
    env.filters["day"] = partial(_localised, day, lang)
    env.filters["hour"] = partial(_localised, hour, lang)
    env.filters["number"] = partial(_number, lang)
    return env


def _localised(formatter: Callable[[datetime, str], str], lang: str, value: datetime) -> str:
    return formatter(value, lang)


def _number(lang: str, value: int) -> str:
    return number(value, lang)


def render_page(name: str, **context: object) -> str:
    return pages().get_template(name).render(**context)


def render_studio_page(lang: str, name: str, **context: object) -> str:
    return studio_pages(lang).get_template(name).render(**context)
