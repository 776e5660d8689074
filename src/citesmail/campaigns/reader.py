"""Read campaigns/<slug>.md files (TOML front matter between +++ lines, Markdown body)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from ..errors import CampaignError, Problem, did_you_mean, known_names
from ..tomlfile import key_lines, line_of, parse_toml, validation_problems
from .models import SLUG, Campaign, EventInfo, FrontMatter, slugify

FENCE = "+++"


def read_text(path: Path, data: bytes | None = None) -> str:
    """A campaign file's text (from `data`, its bytes when already read); not-UTF-8 and
    unreadable files become located errors."""
    try:
        data = path.read_bytes() if data is None else data
    except FileNotFoundError:
        guess = did_you_mean(path.name, [f"{slug}.md" for slug in _slugs(path.parent)])
        raise CampaignError("no such campaign file",
                            guess or "check the name; 'ls campaigns/' lists them",
                            path=path) from None
    except OSError as exc:
        raise CampaignError(f"cannot read: {exc.strerror}", path=path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise CampaignError(
            f"not UTF-8 (byte 0x{data[exc.start]:02x})",
            "save the file as UTF-8 (in most editors: 'Save with encoding')",
            path=path,
            line=line,
            column=column,
        ) from None


def split_front_matter(text: str, path: Path) -> tuple[str, str, int]:
    """(front matter TOML, body, line number where the body starts)."""
    lines = text.replace("\r\n", "\n").split("\n")
    lines = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    if not lines or lines[0].strip() != FENCE:
        raise CampaignError(
            "no front matter: the file must start with a line '+++'",
            "put the TOML keys (kind, subject, title...) between two '+++' lines at the top",
            path=path,
            line=1,
        )
    for index in range(1, len(lines)):
        if lines[index].strip() == FENCE:
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), index + 2
    raise CampaignError(
        "front matter is not closed",
        "add a line '+++' after the last TOML key, before the Markdown body",
        path=path,
        line=1,
    )


def _localize(moment: datetime | None, tz: ZoneInfo) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=tz)


def check_slug(path: Path) -> str:
    """The file name is the campaign's id, used in links and headers: keep it plain."""
    if not SLUG.fullmatch(path.stem):
        raise CampaignError(
            f"'{path.name}' is not a valid campaign file name",
            f"use lower-case letters, digits, '-' and '_': rename it {slugify(path.stem)}.md",
            path=path)
    return path.stem


def load_campaign(path: Path, *, default_lang: str, tz: ZoneInfo,
                  read: bytes | None = None) -> Campaign:
    """Read and validate one campaign file (`read`: its bytes, when already read); every
    error names the file and the line."""
    slug = check_slug(path)
    text = read_text(path, read)
    front_text, body, body_line = split_front_matter(text, path)
    data = parse_toml(front_text, path, first_line=2, error=CampaignError)
    try:
        front = FrontMatter.model_validate(data)
    except ValidationError as exc:
        raise CampaignError.from_problems(
            validation_problems(exc, FrontMatter, front_text, path, first_line=2)
        ) from None
    needs = front.kind_requirements()
    event = front.event
    if event is not None:
        event = EventInfo.model_construct(
            **{**dict(event), "starts": _localize(event.starts, tz),
               "ends": _localize(event.ends, tz)}
        )
        if event.starts and event.ends and event.ends < event.starts:
            needs.append((("event", "ends"), "'event.ends' is before 'event.starts'",
                          "check the date, the hour and the offsets"))
    if needs:
        lines = key_lines(front_text)
        raise CampaignError.from_problems(
            [Problem(message, hint, path, (line_of(lines, loc) or 0) + 1)
             for loc, message, hint in needs]
        )
    return Campaign.model_construct(
        **{**dict(front), "event": event, "lang": front.lang or default_lang},
        slug=slug,
        path=path,
        body=body,
        body_line=body_line,
    )


def key_line(path: Path, loc: tuple[str | int, ...]) -> int | None:
    """The line of a front-matter key in a campaign file (None when absent)."""
    front_text = split_front_matter(read_text(path), path)[0]
    found = line_of(key_lines(front_text), loc)
    return None if found is None else found + 1


def resolve_campaign_path(name: str, campaigns_dir: Path) -> Path:
    """A campaign argument is a path to a .md file or a slug in campaigns/."""
    candidate = Path(name)
    if candidate.suffix == ".md" or candidate.exists():
        return candidate
    path = campaigns_dir / f"{name}.md"
    if path.exists():
        return path
    known = _slugs(campaigns_dir)
    hint = known_names("campaign", name, known) if known else f"no campaigns in {campaigns_dir}"
    raise CampaignError(f"no campaign named '{name}'", hint)


def _slugs(folder: Path) -> list[str]:
    return [p.stem for p in folder.glob("*.md")] if folder.is_dir() else []
