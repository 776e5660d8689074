"""The citesmail command line: a thin edge over the library. Errors become messages here;
each command module registers its commands on `main`, and is imported only when one of
its commands runs (or when the help lists them all)."""

from __future__ import annotations

import difflib
import importlib
import os
import select
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import __version__
from ..errors import CitesmailError

if TYPE_CHECKING:
    from ..config import Settings
    from ..db import Database


# The module (in this package) that defines each top-level command.
COMMANDS = {
    "bounces": "bounce_commands",
    "check": "campaign_commands", "init": "campaign_commands", "new": "campaign_commands",
    "render": "campaign_commands",
    "contacts": "audience_commands", "db": "audience_commands", "lists": "audience_commands",
    "segments": "audience_commands", "forms": "form_commands",
    "dkim": "dkim_commands", "dns": "dns_commands",
    "inbox": "inbox_commands", "secret": "secret_commands",
    "schedule": "schedule_commands", "schedules": "schedule_commands",
    "unschedule": "schedule_commands", "worker": "schedule_commands",
    "send": "delivery_commands", "status": "delivery_commands",
    "preview": "web_commands", "serve": "web_commands", "tracking": "tracking_commands",
    "report": "report_commands", "publish": "publish_commands",
}


# How `citesmail --help` lists the commands: in the order of the work.
SECTIONS = (
    ("Write and check", ("init", "new", "check", "render", "preview")),
    ("Audience", ("contacts", "lists", "segments", "forms")),
    ("Send", ("send", "status")),
    ("Schedule", ("schedule", "schedules", "unschedule", "worker")),
    ("Publish and follow up", ("serve", "publish", "inbox", "bounces", "report",
                               "tracking")),
    ("Set up", ("secret", "dkim", "dns", "db")),
)


class Group(click.Group):
    """Turns CitesmailError (and OS errors) into one-line messages and exit codes, and
    imports a command's module when the command is wanted."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands by section, in the order of the work."""
        width = formatter.width - 6 - max(len(name) for name in COMMANDS)
        for title, names in SECTIONS:
            rows = []
            for name in names:
                command = self.get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(width)))
            with formatter.section(title):
                formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"{__name__}.{COMMANDS[cmd_name]}")
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and not ctx.resilient_parsing \
                and self.get_command(ctx, name) is None:  # (completion stays quiet)
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            ctx.fail(f"No such command '{name}'." + (f" Did you mean '{close[0]}'?"
                                                     if close else ""))
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CitesmailError as exc:
            for problem in exc.problems:
                click.echo(problem.format("error"), err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:
            if isinstance(exc, BrokenPipeError) and _reader_gone():
                ctx.exit(0)  # `citesmail status | head`: the reader has what it wanted
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


def _reader_gone() -> bool:
    """Whether standard output is a pipe whose reader has gone (`| head`); if so, what
    is still to be written goes to /dev/null, so that the exit is quiet."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        gone = any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # closed, or no stdout at all
        return False
    if gone:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return gone


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

    @property
    def existing_db(self) -> Database | None:
        """The database, if there is one yet: a SQLite file that does not exist is not
        created (a command that only reads does not leave an empty one behind)."""
        from ..config import database_exists

        return self.db if database_exists(self.settings.database_url) else None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


pass_state = click.make_pass_decorator(State)


def confirm(question: str, yes: bool, hint: str) -> None:
    """Ask on a terminal; without one (a script, a pipe) refuse, saying how to go on."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise CitesmailError(f"not confirmed: {question.rstrip('?')}", hint)
    click.confirm(question, abort=True, err=True)


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
    _reader_gone()  # output cut short by its reader (`| head`) is no failure
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # a closed pipe, or none
            code = code or 1
    os._exit(code)


__all__ = ["COMMANDS", "State", "confirm", "main", "pass_state", "run"]
