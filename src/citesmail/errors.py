"""The one exception family of citesmail. No click, no HTTP: the edges translate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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


class ConfigError(CitesmailError):
    """The configuration file or environment is wrong."""


class CampaignError(CitesmailError):
    """A campaign file cannot be read or does not validate."""


class TemplateError(CitesmailError):
    """A template (Jinja2 or MJML) fails to render."""


class WorkspaceError(CitesmailError):
    """The workspace on disk is not as a command needs it (exists, missing, ...)."""
