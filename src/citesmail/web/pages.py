"""The web apps' own pages: Jinja templates in this package's templates/ folder, every
value escaped unless marked safe."""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined


@cache
def pages() -> Environment:
    """Built on first use: a command that serves no page never reads the templates."""
    return Environment(loader=PackageLoader("citesmail.web", "templates"), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_page(name: str, **context: object) -> str:
    return pages().get_template(name).render(**context)
