"""The one exception family of citesmail. No click, no HTTP: the edges translate."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

# How many known names a hint lists: past that, a list is noise.
SHOWN_NAMES = 10


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) at a place in a file."""

    message: str
    hint: str = ""
    path: Path | str | None = None
    line: int | None = None
    column: int | None = None

    @property
    def where(self) -> str:
        if self.path is None:
            return ""
        parts = [display_path(self.path)]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def format(self, severity: str = "") -> str:
        """`path:line:col: severity: message — hint`, leaving out what is unknown."""
        parts = [p for p in (self.where, severity) if p]
        text = self.message + (f" — {self.hint}" if self.hint else "")
        return ": ".join([*parts, text])

    def __str__(self) -> str:
        return self.format()


def display_path(path: Path | str) -> str:
    """Paths under the current folder are shown relative to it, as a user typed them."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class CitesmailError(Exception):
    """An error the user can fix; carries one or more problems and an exit code."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        path: Path | str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.problems: list[Problem] = [Problem(message, hint, path, line, column)]
        super().__init__(str(self.problems[0]))

    @classmethod
    def from_problems(cls, problems: list[Problem]) -> CitesmailError:
        error = cls(problems[0].message)
        error.problems = list(problems)
        error.args = ("\n".join(str(p) for p in problems),)
        return error

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


def _likeness(name: str, known: str) -> float:
    """How close `known` is to what was typed, from 0 to 1; a name that contains what was
    typed (a slug's end: lettre-decembre) counts as close."""
    typed, other = name.casefold(), known.casefold()
    ratio = SequenceMatcher(None, typed, other).ratio()
    return max(ratio, 0.7) if len(typed) >= 3 and typed in other else ratio


def nearest(name: str, known: Iterable[str]) -> list[str]:
    """The known names, the closest to `name` first (then in alphabetical order)."""
    return sorted(set(known), key=lambda other: (-_likeness(name, other), other))


def close_names(name: str, known: Iterable[str]) -> list[str]:
    """The known name most likely meant by a typo of `name` (two when equally likely);
    none when no name is close enough."""
    scored = [(_likeness(name, other), other) for other in nearest(name, known) if other != name]
    if not scored:
        return []
    least = max(0.6, scored[0][0])
    return [other for score, other in scored[:2] if score >= least]


def did_you_mean(name: str, known: Iterable[str], prefix: str = "") -> str:
    """"did you mean 'x'?" (or 'x' or 'y'), each name after `prefix`; "" when no known
    name is close."""
    close = close_names(name, known)
    return f"did you mean {' or '.join(repr(prefix + c) for c in close)}?" if close else ""


def known_names(what: str, name: str, known: Iterable[str], more: str = "") -> str:
    """A hint for an unknown name: the likely one, then the known names nearest first."""
    ordered = nearest(name, known)
    shown = ", ".join(ordered[:SHOWN_NAMES])
    if len(ordered) > SHOWN_NAMES:
        shown += f", … ({len(ordered) - SHOWN_NAMES} more)"
    listing = f"known {what}s: {shown}{more}"
    guess = did_you_mean(name, ordered)
    return f"{guess} ({listing})" if guess else listing


def unknown_name(what: str, name: str, known: list[str], create: str) -> CitesmailError:
    """`unknown list 'x'` with the likely name and the names that exist, nearest first;
    or how to make the first one."""
    return CitesmailError(f"unknown {what} '{name}'",
                          known_names(what, name, known) if known else
                          f"create it with: {create}")


class ConfigError(CitesmailError):
    """The configuration file or environment is wrong."""


class CampaignError(CitesmailError):
    """A campaign file cannot be read or does not validate."""


class TemplateError(CitesmailError):
    """A template (Jinja2 or MJML) fails to render."""


class WorkspaceError(CitesmailError):
    """The workspace on disk is not as a command needs it (exists, missing, ...)."""
