"""The command that makes a signing secret: secret."""

from __future__ import annotations

import click

from . import main


@main.command()
def secret() -> None:
    """Print a new random CITESMAIL_SECRET (it signs unsubscribe and web-view links).

    Use the same one for send, worker and serve, and keep it: links signed with a
    secret stop working when it changes.  export CITESMAIL_SECRET="$(citesmail secret)"
    """
    from ..tokens import new_secret

    click.echo(new_secret())
