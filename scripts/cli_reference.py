"""docs/cli.md, made from the commands' own definitions so that it cannot drift from them:

    .venv/bin/python scripts/cli_reference.py > docs/cli.md

(tests/cli/test_reference.py fails when the file and the commands disagree)."""

from __future__ import annotations

import click

from citesmail.cli import SECTIONS, main

# What every command's exit status means.
EXIT_STATUS = (
    (0, "done; for `check`, warnings alone"),
    (1, "an error, said on standard error in one line with what to do "
        "(`error: file:line:column: what — how to fix it`); nothing half-written"),
    (2, "the command line itself is wrong (an unknown option, a missing argument)"),
    (130, "interrupted (Ctrl-C); for `send`, stopped on Ctrl-C or SIGTERM after the "
          "messages in hand: the same command resumes"),
)
# What a command's exit status says beyond EXIT_STATUS.
EXITS = {
    "check": "1 when a campaign has an error; warnings alone exit 0",
    "send": "1 when a test message (`--test`) was refused; 130 when stopped (resumable)",
    "worker": "1 when another worker already runs on the database; 0 after SIGTERM",
    "preview": "runs until Ctrl-C",
    "serve": "runs until Ctrl-C or SIGTERM",
}


def markdown() -> str:
    ctx = click.Context(main, info_name="citesmail")
    lines = ["# Command reference", "",
             "Made from the commands' definitions by `.venv/bin/python "
             "scripts/cli_reference.py > docs/cli.md`; a test fails when they differ.", "",
             "## Exit status", "",
             "| status | meaning |", "|---|---|"]
    lines += [f"| {code} | {meaning} |" for code, meaning in EXIT_STATUS]
    for title, names in SECTIONS:
        lines += ["", f"## {title}"]
        for name in names:
            command = main.get_command(ctx, name)
            assert command is not None
            lines += _command(click.Context(command, info_name=name, parent=ctx), command)
    return "\n".join(lines) + "\n"


def _command(ctx: click.Context, command: click.Command) -> list[str]:
    name = ctx.command_path
    lines = ["", f"### `{name}`", "", f"    {' '.join(command.collect_usage_pieces(ctx))}"
             .replace("    ", f"    {name} ", 1), "", _help(command)]
    options = [_option(ctx, param) for param in command.get_params(ctx)
               if isinstance(param, click.Option) and not param.hidden
               and "--help" not in param.opts]
    if options:
        lines += ["", "| option | meaning |", "|---|---|", *options]
    if isinstance(command, click.Group):
        for sub in command.list_commands(ctx):
            subcommand = command.get_command(ctx, sub)
            assert subcommand is not None
            lines += _command(click.Context(subcommand, info_name=sub, parent=ctx), subcommand)
    exits = EXITS.get(ctx.command_path.removeprefix("citesmail "))
    if exits:
        lines += ["", f"Exit status: {exits}."]
    return lines


def _help(command: click.Command) -> str:
    text = (command.help or "").strip()
    return "\n".join(line.strip() for line in text.splitlines())


def _option(ctx: click.Context, param: click.Option) -> str:
    names = ", ".join(f"`{n}`" for n in param.opts)
    if not param.is_flag:
        names += " " + param.make_metavar(ctx).replace("|", "\\|")
    text = (param.help or "").replace("\n", " ").replace("|", "\\|")
    if param.show_default and param.default not in (None, False, ()):
        text += f" (default: {param.default})"
    return f"| {names} | {text} |"


if __name__ == "__main__":
    click.echo(markdown(), nl=False)
