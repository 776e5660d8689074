"""`citesmail publish`: the campaigns as a static web site."""

from __future__ import annotations

from pathlib import Path

import click

from . import State, main, pass_state


@main.command()
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False),
              default=Path("site"), show_default=True, help="Folder to write the site into.")
@click.option("--base-url", metavar="URL",
              help="Address the folder is published at: canonical links, Atom ids and the "
                   "sitemap are under it (default: [unsubscribe] base_url + /archive/, "
                   "where `citesmail serve` shows the same pages).")
@click.option("--drafts", is_flag=True,
              help="Also publish campaigns not sent or scheduled yet, marked as drafts.")
@pass_state
def publish(state: State, output: Path, base_url: str | None, drafts: bool) -> None:
    """Write the sent and scheduled campaigns as a static web site: pages, index, Atom
    feed, iCalendar feed of the events, sitemap. Only changed files are rewritten, and
    only changed campaigns rendered again (the rest comes from .citesmail/)."""
    from datetime import UTC, datetime

    from ..publish import (
        build_site,
        cache_path,
        default_base_url,
        load_cache,
        save_cache,
        select_sources,
        write_site,
    )

    settings = state.settings
    sources = select_sources(settings, state.existing_db, drafts=drafts)
    cache = load_cache(cache_path(settings, output))
    site = build_site(sources, settings, base_url or default_base_url(settings),
                      datetime.now(UTC), cache)
    done = write_site(output, site.files)
    save_cache(cache_path(settings, output), cache)
    click.echo(f"{output}: {len(site.parts)} campaigns, {len(done.written)} files written, "
               f"{done.unchanged} unchanged" + (f", {len(done.removed)} removed"
                                                 if done.removed else "")
               + f" ({site.rendered} rendered)")
    if not site.parts:
        click.echo("nothing sent or scheduled yet: --drafts publishes the campaign files "
                   "as drafts", err=True)
