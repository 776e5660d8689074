"""Commands over what comes back: inbox import, inbox fetch."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from . import State, main, pass_state


@main.group()
def inbox() -> None:
    """Read what comes back (bounces, complaint reports, unsubscribe requests by mail,
    auto-replies) and act on it; a person's mail is left alone."""


@contextmanager
def reading_progress() -> Iterator[Callable[[int, int], None]]:
    """A bar on stderr (when it is a terminal) counting the messages read."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("reading"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, transient=True, console=Console(stderr=True),
                  disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("read", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield progress


DRY_RUN = click.option("--dry-run", is_flag=True,
                       help="Read and classify everything and report; change and move nothing.")


@inbox.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@DRY_RUN
@pass_state
def import_(state: State, path: Path, dry_run: bool) -> None:
    """Read the messages in PATH: an mbox file, a Maildir folder or one .eml file.

    A bounce does what `bounces import` does; a complaint report (ARF, Microsoft JMRP)
    marks the contact `complained` and notes its row in the campaign's send log; an
    unsubscribe request (the mailto: link's, or a reply asking it from the address we
    wrote to) unsubscribes the contact; auto-replies are ignored; other mail is left
    alone. In a Maildir, handled messages move to the [inbox] processed_folder
    subfolder, flagged seen; an mbox or .eml file is never changed. Reading the same
    messages again changes nothing.
    """
    from ..inbox import import_path

    with reading_progress() as progress:
        report = import_path(state.db, state.settings, path, dry_run=dry_run,
                             progress=progress)
    click.echo("\n".join(report.lines()))


@inbox.command("fetch")
@DRY_RUN
@pass_state
def fetch(state: State, dry_run: bool) -> None:
    """Read the [inbox] IMAP folder (over TLS or STARTTLS, the certificate checked).

    The password comes from CITESMAIL_IMAP_PASSWORD. Messages are classified and acted
    on as by `inbox import`; handled ones are flagged seen and moved to [inbox]
    processed_folder (created when missing); other mail stays in the folder, unseen.
    `citesmail worker` fetches every [inbox] poll_every when [inbox] host is set.
    """
    from ..inbox import fetch as fetch_inbox

    with reading_progress() as progress:
        report = fetch_inbox(state.db, state.settings, dry_run=dry_run, progress=progress)
    click.echo("\n".join(report.lines()))
