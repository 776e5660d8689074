"""citesmail report: what happened to the campaigns after their send."""

from __future__ import annotations

import click

from . import State, main, pass_state

FORMATS = ("text", "csv", "json")


@main.command()
@click.argument("campaign", required=False)
@click.option("--format", "form", type=click.Choice(FORMATS), default="text",
              show_default=True, help="text for a terminal, csv for a spreadsheet, json "
                                      "for a program.")
@pass_state
def report(state: State, campaign: str | None, form: str) -> None:
    """What happened after the send: one line per sent campaign, or CAMPAIGN's whole
    report (delivery, bounces, unsubscribes, complaints, links and clicks)."""
    from ..reports.data import campaign_lines, campaign_report
    from ..reports.formats import Format, render_lines, render_report

    db = state.existing_db
    if campaign is None:
        lines = campaign_lines(db) if db is not None else []
        click.echo(render_lines(lines, Format(form)), nl=False)
        return
    folder = state.settings.campaigns_dir
    files = [path.stem for path in folder.glob("*.md")] if folder.is_dir() else []
    slug = campaign.removesuffix(".md").rsplit("/", 1)[-1]
    if db is None:  # nothing was ever sent: say so without making an empty database
        from ..errors import CitesmailError, known_names

        if slug in files:
            raise CitesmailError(f"campaign '{slug}' has not been sent: it is only a file",
                                 f"send it with: citesmail send {slug}")
        raise CitesmailError(f"unknown campaign '{slug}'", known_names("campaign", slug, files)
                             if files else "no campaign has been sent yet")
    click.echo(render_report(campaign_report(db, slug, files=files), Format(form)), nl=False)
