"""Commands over bounce messages: bounces import."""

from __future__ import annotations

from pathlib import Path

import click

from . import State, main, pass_state


@main.group()
def bounces() -> None:
    """Read bounce messages (delivery status notifications) and record what they say."""


@bounces.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Read everything and report; change nothing.")
@pass_state
def import_(state: State, path: Path, dry_run: bool) -> None:
    """Read the bounces in PATH, an mbox file or a Maildir folder.

    A permanent failure marks the contact with that address `bounced` (never mailed
    again). When the bounce names the citesmail message it returns (the return-path
    address it came back to, with [delivery] return_path; else its Message-ID), the
    contact's row in that campaign's send log becomes `failed`, with the server's
    diagnostic. Temporary failures (delays) are only counted. Importing the same
    messages again changes nothing. `inbox import` does the same and also reads
    complaint reports and unsubscribe requests.
    """
    from ..delivery.bounces import apply
    from ..delivery.dsn import scan
    from ..verp import ReturnReader
    from .inbox_commands import reading_progress

    with reading_progress() as progress:
        found = scan(path, progress, ReturnReader(state.settings))
    report = apply(state.db, found, dry_run=dry_run)
    click.echo("\n".join(report.lines()))
