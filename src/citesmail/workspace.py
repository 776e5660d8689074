"""Creating workspaces and new campaign files from the skeleton shipped in the package."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .campaigns.models import slugify
from .errors import WorkspaceError

SKELETON = Path(__file__).resolve().parent / "skeleton"
KINDS = ("event", "replay", "newsletter")


# What `init` may fill in, and the line of the skeleton's config.toml each replaces.
OWN_VALUES = {
    "organization": ('name = "Labo Cités"', "name"),
    "postal_address": ('postal_address = "4 rue de l\'Exemple, 69001 Lyon"', "postal_address"),
    "sender": ('from = "Labo Cités <annonces@example.org>"', "from"),
    "base_url": ('base_url = "https://lettres.example.org"', "base_url"),
}


def init_workspace(target: Path, values: dict[str, str] | None = None) -> list[Path]:
    """config.toml (with the organisation's own `values`, see OWN_VALUES), campaigns/
    with the example replay, examples/contacts.csv (the sample the README imports),
    templates/; never overwrites."""
    plan = {target / "config.toml": SKELETON / "config.example.toml",
            target / "examples" / "contacts.csv": SKELETON / "examples" / "contacts.csv",
            target / "templates" / "README.md": SKELETON / "templates" / "README.md"}
    for example in sorted((SKELETON / "campaigns").glob("*.md")):
        plan[target / "campaigns" / example.name] = example
    existing = [path for path in plan if path.exists()]
    if existing:
        raise WorkspaceError(
            f"{existing[0]} already exists",
            "citesmail init never overwrites; choose an empty folder",
        )
    for destination, source in plan.items():
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(source.read_bytes())
    if values:
        config = target / "config.toml"
        config.write_text(_filled(config.read_text(encoding="utf-8"), values),
                          encoding="utf-8")
    return list(plan)


def _filled(text: str, values: dict[str, str]) -> str:
    for what, value in values.items():
        line, key = OWN_VALUES[what]
        assert line in text, line  # the skeleton and OWN_VALUES go together
        # A JSON string is a TOML basic string: quotes, backslashes and controls escaped.
        text = text.replace(line, f"{key} = {json.dumps(value, ensure_ascii=False)}", 1)
    return text


def new_campaign(campaigns_dir: Path, kind: str, title: str, day: date) -> Path:
    """Write campaigns/<date>-<slug>.md with every key present; never overwrites."""
    if kind not in KINDS:
        raise WorkspaceError(f"unknown kind '{kind}'", f"use one of: {', '.join(KINDS)}")
    if not title.strip() or "\n" in title or "\r" in title:
        raise WorkspaceError("the title must be one non-empty line", 'e.g. "Replay du 12 juin"')
    path = campaigns_dir / f"{day.isoformat()}-{slugify(title)}.md"
    if path.exists():
        raise WorkspaceError("this campaign file already exists", "choose another title or --date",
                             path=path)
    env = Environment(loader=FileSystemLoader(str(SKELETON)), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["toml"] = lambda value: json.dumps(value, ensure_ascii=False)
    text = env.get_template("new-campaign.md.j2").render(
        kind=kind, title=title.strip(), date=day.isoformat())
    campaigns_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
