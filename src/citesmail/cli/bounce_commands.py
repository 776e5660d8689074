"""Commands over bounce messages: bounces import."""

from __future__ import annotations

import sys
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
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ..delivery.bounces import apply
    from ..delivery.dsn import scan
    from ..verp import ReturnReader

    columns = (TextColumn("reading"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, transient=True, console=Console(stderr=True),
                  disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("read", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        found = scan(path, progress, ReturnReader(state.settings))
    report = apply(state.db, found, dry_run=dry_run)
    click.echo("\n".join(report.lines()))
