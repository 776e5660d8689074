"""The citesmail command line: a thin edge over the library. Errors become messages here;
each command module registers its commands on `main`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import __version__
from ..errors import CitesmailError

if TYPE_CHECKING:
    from ..config import Settings
    from ..db import Database


class Group(click.Group):
    """Turns CitesmailError (and OS errors) into one-line messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CitesmailError as exc:
            for problem in exc.problems:
                click.echo(problem.format("error"), err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"error: {where}{exc.strerror or exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug: one line, and the traceback only when asked
            if os.environ.get("CITESMAIL_DEBUG"):
                raise
            click.echo(f"internal error: {type(exc).__name__}: {exc} (rerun with "
                       "CITESMAIL_DEBUG=1 for details, and please report it)", err=True)
            ctx.exit(1)


class State:
    """What commands share: the settings, and the database once a command opens it."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._settings: Settings | None = None
        self._db: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from ..config import load_settings

            self._settings = load_settings(self.config_path)
        return self._settings

    @property
    def db(self) -> Database:
        if self._db is None:
            from ..db import open_database

            settings = self.settings
            self._db = open_database(settings.database_url,
                                     busy_timeout=settings.database.busy_timeout)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


pass_state = click.make_pass_decorator(State)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Workspace config file (default: ./config.toml if present, "
                   "else built-in defaults).")
@click.version_option(__version__, prog_name="citesmail")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """Campaign files to responsive emails, sent to the right people."""
    ctx.obj = State(config_path)
    ctx.call_on_close(ctx.obj.close)


def run() -> None:
    """The console script. Once the command is done and its output flushed, the process
    ends at once: tearing the interpreter down (every module, the caches of SQLAlchemy
    and pydantic) took another 0.15-0.3 s after the work was over."""
    import gc
    import logging

    # Fewer garbage collections: a command creates its imports' objects (SQLAlchemy,
    # pydantic, ...) once, and scanning them over and over took a sixth of start-up.
    gc.set_threshold(50_000, 20, 20)
    try:
        main(prog_name="citesmail")
        code = 0
    except SystemExit as done:
        if isinstance(done.code, str):
            click.echo(done.code, err=True)
        code = done.code if isinstance(done.code, int) else int(done.code is not None)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            code = code or 1
    os._exit(code)


from . import (  # noqa: E402  (they register commands)
    audience_commands,
    bounce_commands,
    campaign_commands,
    delivery_commands,
    dkim_commands,
    schedule_commands,
    web_commands,
)

__all__ = [
    "State",
    "audience_commands",
    "bounce_commands",
    "campaign_commands",
    "delivery_commands",
    "dkim_commands",
    "main",
    "pass_state",
    "run",
    "schedule_commands",
    "web_commands",
]
