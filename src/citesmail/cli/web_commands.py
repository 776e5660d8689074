"""Commands that serve web pages: preview (local) and serve (the public app)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from . import State, main, pass_state

if TYPE_CHECKING:
    from ..config import Settings

SERVE_PORT = 8080


@main.command()
@click.argument("campaign", required=False)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@pass_state
def preview(state: State, campaign: str | None, port: int, no_browser: bool) -> None:
    """Preview the workspace's campaigns in a browser (127.0.0.1 only), updated live as
    campaign files and templates are saved."""
    import threading
    import webbrowser

    import uvicorn

    from ..config import database_exists
    from ..web.preview import create_preview_app

    settings = state.settings
    if campaign:  # an unknown one is refused here, as by every command
        from ..campaigns import resolve_campaign_path

        campaign = resolve_campaign_path(campaign, settings.campaigns_dir).stem
    url = settings.database_url
    database = url if database_exists(url) else None  # as `check` decides
    address = f"http://127.0.0.1:{port}/" + (f"campaigns/{campaign}" if campaign else "")
    click.echo(f"preview at {address} (Ctrl-C to stop)", err=True)
    if not no_browser:
        threading.Timer(1.0, webbrowser.open, args=[address]).start()
    # Open pages keep their live-reload stream: do not wait for them on Ctrl-C.
    uvicorn.run(create_preview_app(settings, database), host="127.0.0.1", port=port,
                log_level="warning", timeout_graceful_shutdown=1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (put the organisation's reverse proxy in front).")
@click.option("--port", type=click.IntRange(1, 65535),
              help="Port to listen on (default: the port of [unsubscribe] base_url when it "
                   "is on this machine, else 8080).")
@click.option("--header-timeout", default=10.0, show_default=True, metavar="SECONDS",
              type=click.FloatRange(0.1, 600),
              help="Close a connection whose request line and headers take longer.")
@pass_state
def serve(state: State, host: str, port: int | None, header_timeout: float) -> None:
    """The public app at [unsubscribe] base_url: one-click unsubscribe and web view."""
    from ..tokens import check_secret
    from ..web.public import create_public_app
    from ..web.server import run_public_app

    check_secret(state.settings.secret, "citesmail serve")
    run_public_app(create_public_app(state.settings, state.db), host,
                   port or serve_port(state.settings), header_timeout)


def serve_port(settings: Settings) -> int:
    """Where the links point, when they point at this machine: there is no second
    setting to keep in step."""
    url = urlsplit(settings.unsubscribe.base_url)
    if url.hostname in {"127.0.0.1", "localhost", "::1"} and url.port:
        return url.port
    return SERVE_PORT
