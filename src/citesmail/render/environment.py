"""The Jinja2 environment: workspace templates/ first, then the built-in templates."""

from __future__ import annotations

import re
import traceback
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.filters import do_default

from ..errors import CampaignError, TemplateError
from .slots import Slot

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_OBJECT = re.compile(r"'[\w.]*(RecipientSlots|LinkSlots) object'")


def _autoescape(name: str | None) -> bool:
    return name is not None and not name.endswith(".txt.j2")


def _default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """Jinja's `default`, which on a recipient placeholder records the fallback."""
    if isinstance(value, Slot):
        return value.with_default(str(default_value))
    return do_default(value, default_value, boolean)


@lru_cache(maxsize=16)
def environment(templates_dir: Path) -> Environment:
    env = Environment(
        loader=ChoiceLoader(
            [FileSystemLoader(str(templates_dir)), FileSystemLoader(str(BUILTIN_TEMPLATES))]
        ),
        undefined=StrictUndefined,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["default"] = env.filters["d"] = _default
    return env


@lru_cache(maxsize=64)
def _body_template(env: Environment, source: str) -> Template:
    return env.from_string(source)


def render_body(env: Environment, source: str, context: dict[str, Any], path: Path,
                first_line: int) -> str:
    """Run a campaign body through Jinja (no autoescape: it is Markdown, not HTML)."""
    if "{{" not in source and "{%" not in source and "{#" not in source:
        return source
    try:
        return _body_template(env, source).render(context)
    except TemplateSyntaxError as exc:
        raise CampaignError(
            f"template syntax error in the body: {exc.message}",
            "check the {{ ... }} and {% ... %} on that line",
            path=path,
            line=first_line + (exc.lineno or 1) - 1,
        ) from None
    except UndefinedError as exc:
        line = _template_line(exc, "<template>")
        raise CampaignError(
            f"undefined variable in the body: {_readable(exc)}",
            "the body may use recipient.first_name, recipient.last_name, recipient.email "
            "and recipient.organization",
            path=path,
            line=None if line is None else first_line + line - 1,
        ) from None


def render_template(env: Environment, name: str, context: dict[str, Any]) -> str:
    try:
        return env.get_template(name).render(context)
    except TemplateNotFound as exc:
        raise TemplateError(
            f"template not found: {exc.name}",
            "the built-in templates ship with citesmail; check the workspace's templates/",
        ) from None
    except TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax error: {exc.message}",
            "check the {{ ... }} and {% ... %} on that line",
            path=exc.filename or exc.name,
            line=exc.lineno,
        ) from None
    except UndefinedError as exc:
        where = _template_frame(exc)
        raise TemplateError(
            f"undefined variable: {_readable(exc)}",
            "check the name against the variables given to templates (see docs/templates.md)",
            path=where[0] if where else name,
            line=where[1] if where else None,
        ) from None


def _readable(exc: UndefinedError) -> str:
    return _OBJECT.sub(lambda m: "'recipient'" if m.group(1) == "RecipientSlots" else "'links'",
                       exc.message or str(exc))


def _template_line(exc: BaseException, filename: str) -> int | None:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    return frames[-1].lineno if frames else None


def _template_frame(exc: BaseException) -> tuple[str, int] | None:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    return (frames[-1].filename, frames[-1].lineno or 0) if frames else None


def template_sources(env: Environment, names: list[str]) -> list[tuple[Path, str]]:
    """(path, source) of the named templates, for locating MJML errors."""
    found = []
    for name in names:
        try:
            source, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        except TemplateNotFound:
            continue
        found.append((Path(filename or name), source))
    return found
