"""The campaign model: what a campaign file's front matter may say, validated."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    field_validator,
)

from ..languages import check_language

# A campaign's id: its file name, and part of its links, List-Id and Message-IDs (where
# the bounce reader finds it again: see message.py). The one definition of it.
SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")
# An event without `ends` lasts this long (its invitation, its timing checks).
DEFAULT_LENGTH = timedelta(hours=1)


def slugify(text: str, max_length: int = 60) -> str:
    """A slug made of a title: 'Réunion à Lyon' -> 'reunion-a-lyon'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "campaign"


def _web_url(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("is empty: give the full address, starting with https://")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("a web address starting with https:// is expected")
    return value


def _filled(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty: fill it in")
    return value.strip()


def _empty_is_none(value: object) -> object:
    """An optional value left as "" (as `citesmail new` writes them) means none."""
    return None if isinstance(value, str) and not value.strip() else value


WebUrl = Annotated[str, AfterValidator(_web_url)]
# A TOML datetime (2023-06-12T14:00:00, with or without offset); a bare date is refused.
Moment = Annotated[datetime, Strict()]
Text = Annotated[str, AfterValidator(_filled)]
OptionalUrl = Annotated[WebUrl | None, BeforeValidator(_empty_is_none)]
OptionalText = Annotated[str | None, BeforeValidator(_empty_is_none)]


class Section(BaseModel):
    """A part of the front matter: unknown keys refused, values frozen once read."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class EventInfo(Section):
    starts: Moment | None = None
    ends: Moment | None = None
    location: OptionalText = None
    join_url: OptionalUrl = None
    registration_url: OptionalUrl = None


class ReplayInfo(Section):
    video_url: WebUrl
    slides_url: OptionalUrl = None


class Speaker(Section):
    name: Text
    role: OptionalText = None
    organization: OptionalText = None
    group: OptionalText = None


class Item(Section):
    title: Text
    url: WebUrl
    summary: OptionalText = None
    image: OptionalUrl = None
    image_alt: OptionalText = None


class FrontMatter(Section):
    """Exactly the keys a campaign file may hold; anything else is an error."""

    kind: Literal["event", "replay", "newsletter"]
    subject: Text
    preheader: OptionalText = None
    title: Text
    lede: OptionalText = None
    lang: OptionalText = None
    audience: OptionalText = None
    objectives: list[str] = []
    public: list[str] = []
    agenda: list[str] = []
    event: EventInfo | None = None
    replay: ReplayInfo | None = None
    speakers: list[Speaker] = []
    items: list[Item] = []
    # false: never published on the web (`citesmail publish`, serve's /archive/)
    archive: Annotated[bool, Strict()] = True

    @field_validator("subject")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if len(value.splitlines()) > 1 or value.endswith(("\n", "\r")):
            raise ValueError("must be one line: remove the line break (a newline or \\r)")
        return value.strip()

    @field_validator("lang")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        return None if value is None else check_language(value)

    def kind_requirements(self) -> list[tuple[tuple[str, ...], str, str]]:
        """(location, message, hint) for what this kind needs beyond the common keys."""
        needs: list[tuple[tuple[str, ...], str, str]] = []
        if self.kind in {"event", "replay"} and (self.event is None or self.event.starts is None):
            needs.append(
                (("event",), f"'event.starts' is required for a campaign of kind {self.kind}",
                 "add starts = 2023-06-12T14:00:00 under [event]")
            )
        if self.kind == "replay" and self.replay is None:
            needs.append(
                (("kind",), "a replay needs a [replay] table with video_url",
                 'add [replay] and video_url = "https://..." (the recording)')
            )
        if self.kind == "newsletter" and not self.items:
            needs.append(
                (("kind",), "a newsletter needs at least one [[items]] entry",
                 'add [[items]] with title = "..." and url = "https://..."')
            )
        return needs


class Campaign(FrontMatter):
    """A validated campaign: its front matter plus where it came from and its body."""

    slug: str
    path: Path
    body: str = ""
    body_line: int = 1
    lang: str = "fr"
