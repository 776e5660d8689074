"""Commands that serve web pages: serve (the public app)."""

from __future__ import annotations

import click

from . import State, main, pass_state


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (put the organisation's reverse proxy in front).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@pass_state
def serve(state: State, host: str, port: int) -> None:
    """The public app at [unsubscribe] base_url: one-click unsubscribe and web view."""
    import uvicorn

    from ..web.public import create_public_app

    if not state.settings.secret:
        click.echo("warning: CITESMAIL_SECRET is not set: only links signed with the "
                   "development key (outbox and previews) are accepted", err=True)
    app = create_public_app(state.settings, state.db)
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False,
                proxy_headers=True, limit_concurrency=200)
