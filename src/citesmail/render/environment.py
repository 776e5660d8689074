"""The Jinja2 environment: workspace templates/ first, then the built-in templates."""

from __future__ import annotations

import contextlib
import os
import re
import traceback
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn

from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemBytecodeCache,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
)
from jinja2.exceptions import SecurityError
from jinja2.filters import do_default
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from ..errors import CampaignError, TemplateError, did_you_mean
from .plainbody import plain_body
from .slots import RecipientValueError, Slot, check_tokens

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_OBJECT = re.compile(r"'[\w.]*(RecipientSlots|LinkSlots) object'")


def _autoescape(name: str | None) -> bool:
    return name is not None and not name.endswith(".txt.j2")


def _default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """Jinja's `default`, which on a recipient placeholder records the fallback."""
    if isinstance(value, Slot):
        return value.with_default(default_value)
    return do_default(value, default_value, boolean)


_SAFE_KEPT = 4096


class _Sandbox(ImmutableSandboxedEnvironment):
    """Campaign bodies and workspace templates are written by people who must not be
    able to run code on this machine: no Python internals, no changing lists or dicts.

    Jinja's sandbox answers an unsafe access with an undefined value, which only fails
    when printed; `{% set x = ()|attr("__class__") %}` would pass unnoticed. Refuse it
    at once, so every unsafe access is an error at its line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._safe: dict[tuple[type, str], bool] = {}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Jinja's answer, kept per (type, attribute): it depends on nothing else, and
        asking it for every attribute of every render was a third of a warm render."""
        key = (type(obj), attr)
        safe = self._safe.get(key)
        if safe is None:
            if len(self._safe) > _SAFE_KEPT:  # names made at render time (`attr`)
                self._safe.clear()
            safe = self._safe[key] = super().is_safe_attribute(obj, attr, value)
        return safe

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of "
                            f"{type(obj).__name__!r} object is unsafe")


class _QuietCache(FileSystemBytecodeCache):
    """Compiled templates kept between runs (compiling them took about half of a cold
    render); a cache that cannot be read or written is simply not used."""

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        # Sandboxed code differs from plain code (calls go through the sandbox) but Jinja
        # keys the cache by template name only: never load what a plain environment
        # (an older citesmail) compiled for the same file.
        return super().get_cache_key(f"sandboxed:{name}", filename)

    def load_bytecode(self, bucket: Any) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, ValueError, EOFError):
            bucket.reset()

    def dump_bytecode(self, bucket: Any) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache() -> _QuietCache | None:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(base) / "citesmail" / "jinja"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return None
    return _QuietCache(str(folder))


class UnknownName(UndefinedError):
    """An undefined variable or attribute, with what was looked up and in what."""

    def __init__(self, message: str, name: str | None, owner: Any) -> None:
        super().__init__(message)
        self.name, self.owner = name, owner


class _Undefined(StrictUndefined):
    """StrictUndefined whose error keeps the name and its owner, so that the message
    can offer the name that was probably meant."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise UnknownName(self._undefined_message, self._undefined_name, self._undefined_obj)


def _fail_in_every_operator(cls: type[Undefined]) -> None:
    """Jinja binds the operators of its undefined values (__str__, __iter__, __add__...)
    to the failing method of its own class: bind them to the one of `cls`."""
    for name, value in {**vars(Undefined), **vars(StrictUndefined)}.items():
        if value is Undefined._fail_with_undefined_error:
            setattr(cls, name, cls._fail_with_undefined_error)


_fail_in_every_operator(_Undefined)


class _Overridable(BaseLoader):
    """The workspace's templates, then the built-in ones. A built-in template stays
    up to date only while the workspace has no file of its name: one added later (to a
    running `serve`, or between two commands in one process) is used at once."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        self.workspace = FileSystemLoader(str(templates_dir))
        self.builtin = FileSystemLoader(str(BUILTIN_TEMPLATES))

    def get_source(self, environment: Environment,
                   template: str) -> tuple[str, str | None, Callable[[], bool] | None]:
        with contextlib.suppress(TemplateNotFound):
            return self.workspace.get_source(environment, template)
        source, filename, uptodate = self.builtin.get_source(environment, template)
        override = self.templates_dir / template
        return source, filename, lambda: (uptodate is None or uptodate()) \
            and not override.exists()

    def list_templates(self) -> list[str]:
        names = set(self.builtin.list_templates())
        with contextlib.suppress(OSError):
            names.update(self.workspace.list_templates())
        return sorted(names)


@lru_cache(maxsize=16)
def environment(templates_dir: Path) -> Environment:
    env = _Sandbox(
        bytecode_cache=_bytecode_cache(),
        loader=_Overridable(templates_dir),
        undefined=_Undefined,
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
        rendered = plain_body(source, context)  # no template to compile: most bodies
        if rendered is None:
            rendered = _body_template(env, source).render(context)
        check_tokens(rendered)
        return rendered
    except TemplateSyntaxError as exc:
        raise CampaignError(
            f"template syntax error in the body: {exc.message}",
            "check the {{ ... }} and {% ... %} on that line",
            path=path,
            line=first_line + (exc.lineno or 1) - 1,
        ) from None
    except Exception as exc:  # any runtime error in the author's Jinja: say where
        line = _template_line(exc, "<template>") or _filtered_recipient_line(source)
        raise CampaignError(
            f"{_what(exc)} in the body",
            _hint(exc, context, "check the {{ ... }} and {% ... %} on that line"),
            path=path,
            line=None if line is None else first_line + line - 1,
        ) from None


def render_template(env: Environment, name: str, context: dict[str, Any]) -> str:
    try:
        rendered = env.get_template(name).render(context)
        check_tokens(rendered)
        return rendered
    except TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax error: {exc.message}",
            "check the {{ ... }} and {% ... %} on that line",
            path=exc.filename or exc.name,
            line=exc.lineno,
        ) from None
    except UnicodeDecodeError:
        raise TemplateError(f"template {name} (or one it includes) is not UTF-8",
                            "save the workspace's templates as UTF-8") from None
    except Exception as exc:  # runtime errors in a (workspace) template: say where
        where = _template_frame(exc)
        if isinstance(exc, TemplateNotFound) and where is None:
            raise TemplateError(f"template not found: {exc.name}",
                                "the built-in templates ship with citesmail; check the "
                                "workspace's templates/") from None
        raise TemplateError(
            f"{_what(exc)}",
            _hint(exc, context, "check the expression on that line"),
            path=where[0] if where else name,
            line=where[1] if where else None,
        ) from None


_HINTS: dict[type[BaseException], str] = {
    UndefinedError: "the body may use recipient.first_name, recipient.last_name, "
                    "recipient.email and recipient.organization",
    RecipientValueError: "e.g. {{ recipient.first_name | default(\"Madame, Monsieur\") }}",
    TemplateNotFound: "check the name, and the workspace's templates/",
    SecurityError: "templates run in a sandbox: use the documented variables, not Python "
                   "internals (names starting with '_'), and do not change lists or dicts",
}


def _hint(exc: BaseException, context: Mapping[str, Any], otherwise: str) -> str:
    """The name probably meant, or what to do about this kind of error."""
    guess = _undefined_guess(exc, context) if isinstance(exc, UndefinedError) else ""
    return guess or next((hint for kind, hint in _HINTS.items() if isinstance(exc, kind)),
                         otherwise)


def _undefined_guess(exc: UndefinedError, context: Mapping[str, Any]) -> str:
    """"did you mean 'recipient'?" for a misspelt variable, "did you mean
    'recipient.first_name'?" for a misspelt attribute; "" when no name is close."""
    if not isinstance(exc, UnknownName) or exc.name is None:
        return ""
    if exc.owner is missing:  # a variable: the names the template was given
        return did_you_mean(exc.name, context)
    holder = next((key for key, value in context.items() if value is exc.owner), None)
    return did_you_mean(exc.name, _names_in(exc.owner), f"{holder}." if holder else "")


def _names_in(owner: Any) -> list[str]:
    """What can follow `owner.` in a template: a mapping's keys, an object's attributes."""
    if isinstance(owner, Mapping):
        return [str(key) for key in owner]
    return [name for name in dir(owner) if not name.startswith("_")]


def _what(exc: BaseException) -> str:
    if isinstance(exc, UndefinedError):
        return f"undefined variable: {_readable(exc)}"
    if isinstance(exc, RecipientValueError):
        return str(exc)
    if isinstance(exc, TemplateNotFound):
        return f"template not found: {exc.name}"
    if isinstance(exc, SecurityError):
        return f"unsafe template code: {str(exc).rstrip('.')}"
    return f"error: {type(exc).__name__}: {exc}"


_FILTERED = re.compile(r"recipient\.\w+\s*\|\s*(?!\s|(?:default|d)\b)")


def _filtered_recipient_line(source: str) -> int | None:
    """The line of the body where a recipient value goes through another filter."""
    for number, line in enumerate(source.split("\n"), start=1):
        if _FILTERED.search(line):
            return number
    return None


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
