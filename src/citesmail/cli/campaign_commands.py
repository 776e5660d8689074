"""Commands that draft and render campaigns: init, new, check, render."""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import CitesmailError, Problem, display_path
from . import State, main, pass_state

if TYPE_CHECKING:
    from ..campaigns import Campaign
    from ..config import Settings
    from ..message import Audience, Recipient


@main.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False), default=".")
@click.option("--organization", metavar="NAME", help="Your organisation's name.")
@click.option("--postal-address", metavar="TEXT", help="Its postal address (in every footer).")
@click.option("--from", "sender", metavar='"NAME <ADDRESS>"', help="The From of the emails.")
@click.option("--base-url", metavar="URL", help="The https address where citesmail serve "
              "answers (unsubscribe and web-view links).")
def init(directory: Path, organization: str | None, postal_address: str | None,
         sender: str | None, base_url: str | None) -> None:
    """Create a workspace in DIRECTORY: config.toml, campaigns/ (an example),
    examples/contacts.csv (sample contacts), templates/.

    Values not given are asked on a terminal; left out, the examples stay (check warns,
    and an SMTP send to a relay refuses them).
    """
    from ..workspace import init_workspace

    given = {"organization": organization, "postal_address": postal_address,
             "sender": sender, "base_url": base_url}
    values = {what: value for what, value in _ask(given).items() if value}
    for path in init_workspace(directory, values):
        click.echo(f"created {path}")
    click.echo(f"next: cd {directory} && citesmail check && citesmail render "
               f"{_first_example(directory)}")
    click.echo('before sending for real: export CITESMAIL_SECRET="$(citesmail secret)" '
               "(keep it: the links sent are signed with it)")


def _ask(given: dict[str, str | None]) -> dict[str, str | None]:
    """On a terminal, ask for what was not given (Enter keeps the example)."""
    if not sys.stdin.isatty():
        return given
    questions = {"organization": "Organisation", "postal_address": "Postal address",
                 "sender": 'From ("Name <address>")', "base_url": "Public https address"}
    return {what: value or click.prompt(questions[what], default="", show_default=False)
            for what, value in given.items()}


def _first_example(directory: Path) -> str:
    return next(iter(sorted((directory / "campaigns").glob("*.md")))).stem


@main.command()
@click.argument("kind", type=click.Choice(["event", "replay", "newsletter"]))
@click.argument("title")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="Date in the file name and of the event (default: today).")
@pass_state
def new(state: State, kind: str, title: str, day: Any) -> None:
    """Write campaigns/<date>-<slug>.md for a new campaign, every key present."""
    from ..workspace import new_campaign

    chosen = day.date() if day else date.today()
    path = new_campaign(state.settings.campaigns_dir, kind, title, chosen)
    click.echo(display_path(path))


def _campaign_paths(settings: Settings, names: tuple[str, ...]) -> list[Path]:
    from ..campaigns import resolve_campaign_path

    if names:
        return [resolve_campaign_path(name, settings.campaigns_dir) for name in names]
    paths = sorted(settings.campaigns_dir.glob("*.md"))
    if not paths:
        raise CitesmailError(f"no campaigns in {settings.campaigns_dir}",
                             "name a campaign file, or create one with 'citesmail new'")
    return paths


def _load(settings: Settings, path: Path) -> Campaign:
    from ..campaigns import load_campaign  # (not checks: render needs no database)

    return load_campaign(path, default_lang=settings.campaigns.lang, tz=settings.tz)


@main.command()
@click.argument("campaigns", nargs=-1)
@pass_state
def check(state: State, campaigns: tuple[str, ...]) -> None:
    """Validate and render CAMPAIGNS (default: all in campaigns/); report errors and warnings.

    Exit 1 if any campaign has an error; warnings alone exit 0.
    """
    from ..checks import check_campaign, check_settings

    settings = state.settings
    paths = _campaign_paths(settings, campaigns)
    shared = check_settings(settings)
    _report(shared.warnings, "warning")
    _report(shared.errors, "error")
    errors, warnings, unrendered = len(shared.errors), len(shared.warnings), 0
    database = state.existing_db
    for path in paths:
        found = check_campaign(path, settings, database)
        _report(found.errors, "error")
        _report(found.warnings, "warning")
        _report(found.notes, "note")
        errors += len(found.errors)
        warnings += len(found.warnings)
        unrendered += found.rendered is None
    click.echo(_summary(len(paths), errors, warnings, unrendered), err=errors > 0)
    if errors:
        sys.exit(1)


def _summary(checked: int, errors: int, warnings: int, unrendered: int) -> str:
    summary = (f"{checked} campaign{'s' if checked > 1 else ''} checked: "
               f"{errors} error{'s' if errors != 1 else ''}, "
               f"{warnings} warning{'s' if warnings != 1 else ''}")
    if unrendered:  # its warnings come from the rendered email
        its = "its" if unrendered == 1 else "their"
        summary += (f" ({unrendered} could not be rendered: {its} warnings show once "
                    f"{its} errors are fixed)")
    return summary


def check_timing(campaign: Campaign, now: datetime | None = None) -> None:
    """A replay of an event not over yet is refused; an invitation to an event that is
    over is said, not refused (the same timing step as `check`)."""
    from ..checks import check_timing as timing

    found = timing(campaign, now)
    found.raise_errors()
    for problem in found.warnings:
        click.echo(problem.format("warning"), err=True)


def _report(problems: Iterable[Problem], severity: str) -> None:
    for problem in problems:
        click.echo(problem.format(severity), err=severity == "error")


@main.command()
@click.argument("campaign")
@click.option("-o", "--output", "output", type=click.Path(path_type=Path, file_okay=False),
              default="out", show_default=True, help="Folder for the .html, .txt and .eml.")
@click.option("--as", "as_recipient", metavar="EMAIL",
              help="Render for this address ('First Last <addr>' also works) "
                   "instead of the sample recipient.")
@pass_state
def render(state: State, campaign: str, output: Path, as_recipient: str | None) -> None:
    """Write <slug>.html, <slug>.txt and <slug>.eml: the message one recipient would get."""
    from ..campaigns import resolve_campaign_path
    from ..message import (
        SAMPLE_RECIPIENT,
        MessageTemplate,
        personalize,
    )
    from ..render import render_campaign

    settings = state.settings
    recipient = _recipient_as(state, as_recipient) if as_recipient else SAMPLE_RECIPIENT
    rendered = render_campaign(_load(settings, resolve_campaign_path(
        campaign, settings.campaigns_dir)), settings)
    parts = personalize(rendered, recipient, settings)
    audience = _audience(state, rendered.campaign.audience)
    eml = MessageTemplate(rendered, settings, audience=audience).build(recipient,
                                                                       links=parts.links)
    html, text = parts.html, parts.text
    slug = rendered.campaign.slug
    output.mkdir(parents=True, exist_ok=True)
    for suffix, write in _outputs(html, text, eml):
        path = output / f"{slug}.{suffix}"
        _write_atomically(path, write)
        click.echo(path)
    note_development_key(settings)


def _audience(state: State, segment: str | None) -> Audience | None:
    """The campaign's segment as a send names it; its title only when there is a
    database to read it from (without one, SQLAlchemy is not even imported)."""
    from ..config import database_exists
    from ..message import Audience

    if not segment or not database_exists(state.settings.database_url):
        return Audience(segment) if segment else None
    from ..delivery import audience_of

    return audience_of(state.db, segment)


def _recipient_as(state: State, text: str) -> Recipient:
    """The stored contact with that address (their names, their links), else the
    address and name given, said so."""
    from ..message import recipient_from_text

    try:
        given = recipient_from_text(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--as") from None
    stored = _stored_recipient(state, given.email)
    if stored is None:
        click.echo(f"note: {given.email} is not a contact: rendered with the name given",
                   err=True)
        return given
    return stored


def _stored_recipient(state: State, address: str) -> Recipient | None:
    from ..audience.recipients import find_recipient

    db = state.existing_db
    if db is None:
        return None
    try:
        with db.session(write=False) as session:
            return find_recipient(session, address)
    except CitesmailError:  # not a contact
        return None


def say_alignment(settings: Settings) -> None:
    """Once per send or schedule over SMTP: a DKIM domain or return path not aligned
    with From. (DKIM off is said by check and the preview only: the relay may sign.)"""
    if settings.delivery.transport != "smtp":
        return
    from ..render.lint import alignment_problems

    for problem in alignment_problems(settings, dkim_off=False):
        click.echo(problem.format("warning"), err=True)


def note_development_key(settings: Settings) -> None:
    """Say that links are signed with the published development key, when they are."""
    if not settings.secret:
        click.echo("note: CITESMAIL_SECRET is not set; links are signed with a development key",
                   err=True)


def _outputs(html: str, text: str, eml: bytes) -> Iterator[tuple[str, bytes]]:
    yield "html", html.encode("utf-8")
    yield "txt", text.encode("utf-8")
    yield "eml", eml


def _write_atomically(path: Path, data: bytes) -> None:
    """Whole or not at all: a full disk leaves neither half a file nor a .tmp one."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_bytes(data)
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        cause = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
        raise CitesmailError(f"cannot write {path}: {cause}",
                             "free some space or choose another folder with -o") from None
