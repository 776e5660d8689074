"""`citesmail tracking`: what is kept of the measurement after a send."""

from __future__ import annotations

import click

from . import State, main, pass_state


@main.group()
def tracking() -> None:
    """Measurement after a send ([tracking] in config.toml)."""


@tracking.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted, delete nothing.")
@pass_state
def purge(state: State, dry_run: bool) -> None:
    """Delete the clicks and opens recorded per person that are older than [tracking]
    retention; the counts per link stay (citesmail worker also does it every hour)."""
    from ..audience.retention import purge_measured, span

    retention = state.settings.tracking.retention
    with state.db.session(write=not dry_run) as session:
        purged = purge_measured(session, retention, dry_run=dry_run)
    click.echo(f"{purged.summary(dry_run)} (older than {span(retention)}, [tracking] "
               "retention)")
