"""One check of a campaign file, shared by `citesmail check`, the preview and the timing
step of send and schedule, so that they all give the same answers. Nothing here prints:
the edges show the problems."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .audience.segments import get_segment
from .campaigns import Campaign, load_campaign
from .config import Settings, plaintext_auth_problem
from .db import Database
from .errors import CitesmailError, Problem
from .message import SAMPLE_RECIPIENT, personalize
from .render import RenderedCampaign, render_campaign
from .render.lint import lint, lint_settings, timing_problems
from .tracking.links import NOT_COUNTED, numbered

SHOWN = 5  # counted links named in the note


@dataclass(frozen=True)
class Findings:
    """Errors (the campaign must not go out as it is) and warnings (it may)."""

    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    def raise_errors(self) -> None:
        if self.errors:
            raise CitesmailError.from_problems(list(self.errors))


@dataclass(frozen=True)
class CampaignCheck(Findings):
    """The findings on one campaign file, and the campaign rendered when it could be."""

    rendered: RenderedCampaign | None = None
    notes: tuple[Problem, ...] = ()  # neither error nor warning: what a send will do


def load(path: Path, settings: Settings) -> Campaign:
    """Read and validate a campaign file with the workspace's defaults."""
    return load_campaign(path, default_lang=settings.campaigns.lang, tz=settings.tz)


def check_campaign(path: Path, settings: Settings, database: Database | None = None,
                   now: datetime | None = None) -> CampaignCheck:
    """Load, render, then check the timing, the email a sample recipient would get and,
    given a database, the audience. A campaign that cannot be rendered has only the
    errors that stopped it: its other findings come once they are fixed."""
    try:
        rendered = render_campaign(load(path, settings), settings)
    except CitesmailError as exc:
        return CampaignCheck(errors=tuple(exc.problems))
    timing = check_timing(rendered.campaign, now)
    sample_html = personalize(rendered, SAMPLE_RECIPIENT, settings).html
    warnings = (*timing.warnings, *lint(rendered, sample_html),
                *audience_problems(rendered.campaign, database))
    return CampaignCheck(timing.errors, warnings, rendered,
                         (counted_links(rendered, settings.tracking.clicks),))


def counted_links(rendered: RenderedCampaign, clicks: str) -> Problem:
    """Which links a send will count, by `[tracking] clicks`."""
    path = rendered.campaign.path
    if clicks == "off":
        return Problem("no link will be counted (clicks = off)", "", path)
    links = list(numbered(rendered.html, rendered.text))
    shown = ", ".join(links[:SHOWN]) + (", …" if len(links) > SHOWN else "")
    return Problem(f"{len(links)} link{'s' if len(links) != 1 else ''} will be counted "
                   f"(clicks = {clicks}){': ' + shown if links else ''}; not counted: "
                   + ", ".join(NOT_COUNTED), "", path)


def check_timing(campaign: Campaign, now: datetime | None = None) -> Findings:
    """A replay of an event not over yet is an error; an invitation to an event that is
    over, a warning. `now` is when the campaign goes out (a scheduled send: then)."""
    late, early = timing_problems(campaign, now)
    return Findings(tuple(late), tuple(early))


def audience_problems(campaign: Campaign, database: Database | None) -> list[Problem]:
    """A campaign's audience must name a saved segment; with no database yet, there is
    none."""
    if not campaign.audience:
        return []
    if database is None:
        return [Problem(f"audience: no segment '{campaign.audience}' yet: no contacts have "
                        "been imported", "import contacts (citesmail contacts import FILE "
                        f"--list NAME), then citesmail segments add {campaign.audience} "
                        "--list NAME", campaign.path)]
    try:
        with database.session(write=False) as session:
            get_segment(session, campaign.audience)
    except CitesmailError as exc:
        first = exc.problems[0]
        return [Problem(f"audience: {first.message}", first.hint, campaign.path)]
    return []


def check_settings(settings: Settings) -> Findings:
    """What is wrong with the configuration every campaign shares."""
    refused = plaintext_auth_problem(settings)
    return Findings(() if refused is None else (refused,), tuple(lint_settings(settings)))
