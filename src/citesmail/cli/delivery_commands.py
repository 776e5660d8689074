"""Commands that send: send, status."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import CitesmailError
from ..states import DeliveryState, SendState
from . import State, confirm, main, pass_state

if TYPE_CHECKING:
    from ..audience.segments import Definition
    from ..delivery import SendInfo
    from ..message import Recipient


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM finish the messages in hand, then stop (resumable)."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, _frame: Any) -> None:
        if not stop.is_set():
            click.echo("\nstopping after the messages in hand...", err=True)
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@main.command()
@click.argument("campaign")
@click.option("--segment", metavar="NAME", help="Segment to send to (default: the "
              "campaign's audience).")
@click.option("--dry-run", is_flag=True, help="Resolve the audience and build every "
              "message; send nothing, log nothing.")
@click.option("--list-recipients", is_flag=True, help="With --dry-run: the recipients as "
              "CSV on standard output (the report goes to standard error).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--test", "test_addresses", multiple=True, metavar="ADDR",
              help="Send only to this address (repeatable), subject prefixed [TEST]; "
                   "nothing is logged for the campaign.")
@click.option("--resend-unknown", is_flag=True, help="Send again to recipients whose "
              "state is unknown (the process died while sending to them).")
@click.option("--join", is_flag=True, help="PostgreSQL: drain the send beside the "
              "processes already at it (the worker, other send --join), each claiming "
              "rows of its own.")
@pass_state
def send(state: State, campaign: str, segment: str | None, dry_run: bool,
         list_recipients: bool, yes: bool, test_addresses: tuple[str, ...],
         resend_unknown: bool, join: bool) -> None:
    """Send CAMPAIGN to a segment, or resume its send where it stopped."""
    from ..campaigns import resolve_campaign_path
    from ..render import render_campaign
    from .campaign_commands import _load, check_timing, note_development_key, say_alignment

    settings = state.settings
    if list_recipients and not dry_run:
        raise click.UsageError("--list-recipients goes with --dry-run")
    if test_addresses and (dry_run or resend_unknown):
        raise click.UsageError("--test sends only test messages: it goes without --dry-run "
                               "and --resend-unknown")
    if join and not state.db.is_postgresql:
        raise CitesmailError("only PostgreSQL lets several processes drain one send",
                             "SQLite sends with one process: leave out --join")
    path = resolve_campaign_path(campaign, settings.campaigns_dir)
    rendered = render_campaign(_load(settings, path), settings)
    if settings.delivery.transport != "smtp":  # (SMTP refuses to send without a secret)
        note_development_key(settings)
    elif not dry_run:
        say_alignment(settings)
    if test_addresses:
        _send_tests(state, rendered, test_addresses, segment or rendered.campaign.audience)
        return
    from ..delivery import file_hash, find_send, prepare_send, requeue_unknown

    db = state.db
    existing = find_send(db, rendered.slug)
    name = _segment_to_send(existing, segment or rendered.campaign.audience, segment)
    if existing is None:  # a send under way goes on with what it stored
        check_timing(rendered.campaign)
    if existing is not None and existing.state == SendState.DONE and not dry_run \
            and _finished(state, existing, resend_unknown):
        return
    definition, recipients = _audience(state, name, wanted=existing is None or dry_run,
                                       counted=existing is None and not yes and not dry_run)
    where = (f"smtp {settings.smtp.host}:{settings.smtp.port}"
             if settings.delivery.transport == "smtp" else f"the outbox {settings.outbox_dir}")
    if dry_run:
        if definition is None:
            raise CitesmailError("this send has no segment to build messages for")
        click.echo(f"dry run of '{rendered.slug}' to segment {name} via {where}",
                   err=list_recipients)
        _dry_run(state, rendered, definition, list_recipients, name)
        return
    if existing is None:
        question = (f"Send '{rendered.slug}' to {recipients} recipient"
                    f"{'s' if recipients != 1 else ''} (segment {name}) via {where}?")
        confirm(question, yes, "add --yes to send without a question")
    from ..delivery.transports import make_transport

    make_transport(settings).close()  # refuse early (no secret, bad outbox)
    prepared = prepare_send(db, rendered, name, definition, file_hash(path))
    if prepared.resumed:
        click.echo(f"resuming the send of '{rendered.slug}' ({prepared.total} recipients)",
                   err=True)
        if prepared.changed:
            click.echo("warning: the campaign file changed since the send started; the "
                       "stored version is sent", err=True)
    if resend_unknown:
        click.echo(f"{requeue_unknown(db, prepared.send_id)} unknown recipient(s) queued "
                   "again", err=True)
    _run(state, prepared.send_id, prepared.total, join)


def _segment_to_send(existing: SendInfo | None, name: str | None,
                     asked: str | None) -> str | None:
    """A send under way goes on to the segment it started with."""
    if existing is None:
        if not name:
            raise CitesmailError("no segment to send to",
                                 "give --segment NAME, or set audience = \"NAME\" in the "
                                 "campaign file")
        return name
    if existing.state == SendState.RUNNING and asked and asked != existing.segment:
        raise CitesmailError(
            f"'{existing.campaign}' was started for segment {existing.segment}, whose "
            "recipients were fixed then", "drop --segment: the send goes on as started")
    return existing.segment


def _finished(state: State, existing: SendInfo, resend_unknown: bool) -> bool:
    """Say so when the send is over (unless unknown rows are to be sent again)."""
    from ..delivery import send_counts, summary

    done = send_counts(state.db, existing.id)
    if resend_unknown and done["unknown"]:
        return False
    finished = _local(state, existing.finished_at) if existing.finished_at else "?"
    click.echo(f"'{existing.campaign}' was sent already ({summary(done)}, finished "
               f"{finished}): nothing more to send", err=True)
    return True


def _audience(state: State, name: str | None, *, wanted: bool,
              counted: bool) -> tuple[Definition | None, int | None]:
    """The segment's definition (when wanted: a resumed send has its recipients) and
    how many it matches now (when a question will say it)."""
    from ..audience.segments import count, get_segment

    if not name or not wanted:
        return None, None
    with state.db.session(write=False) as session:
        definition = get_segment(session, name)[1]
        return definition, count(session, definition) if counted else None


OnProgress = Callable[[dict[str, int]], None]


@contextmanager
def _progress_bar(total: int) -> Iterator[tuple[OnProgress | None, Callable[[str], None]]]:
    """A progress bar with rate and ETA on a terminal; nothing (not even rich) otherwise.
    With it, a way to say something on standard error that the bar does not garble."""
    if not sys.stderr.isatty():
        yield None, lambda text: click.echo(text, err=True)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    started = time.monotonic()
    columns = (TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, transient=True, console=_console()) as bar:
        task = bar.add_task("send", total=total, rate="")

        def progress(counts: dict[str, int]) -> None:
            settled = sum(counts[s] for s in ("sent", "failed", "skipped", "unknown"))
            elapsed = max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=settled, rate=f"{counts['sent'] / elapsed:.0f} msg/s")

        yield progress, lambda text: bar.console.print(text, markup=False, highlight=False)


def _run(state: State, send_id: int, total: int, join: bool = False) -> None:
    from ..delivery import SendRun, summary
    from ..delivery.transports import make_transport

    settings = state.settings
    stop = threading.Event()
    with _progress_bar(total) as (progress, say), _stop_on_signals(stop):
        run = SendRun(state.db, send_id, settings, lambda: make_transport(settings),
                      stop=stop, progress=progress, notice=say, join=join)
        result = run.run()
    if result.recovered:
        click.echo(f"warning: {result.recovered} message(s) were being sent when the last run "
                   "stopped: marked unknown (--resend-unknown sends them again)", err=True)
    click.echo(summary(result.counts))
    if result.finished:
        click.echo("done", err=True)
    elif result.stopped:
        click.echo("stopped: run the same command to resume", err=True)
        sys.exit(130)
    elif result.waiting_for_cap:
        click.echo(f"hourly cap reached: run again after "
                   f"{_local(state, result.waiting_for_cap)} (or let citesmail worker do it)",
                   err=True)
    elif result.next_retry:
        click.echo(f"next retry at {_local(state, result.next_retry)}: run the same command "
                   "then (or let citesmail worker do it)", err=True)


def _reply(code: int | None, message: str | None) -> str:
    """A server's answer as a line: '550 no such user', or the error alone."""
    message = message or ""
    return f"{code} {message}".strip() if code is not None else message


def _list_rows(state: State, send_id: int, row_state: DeliveryState, output: str) -> None:
    import csv

    from ..delivery.sendlog import rows_in_state

    rows = rows_in_state(state.db, send_id, row_state)
    if output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["email", "state", "last_code", "last_answer", "updated_at"])
        writer.writerows([row.email, row.state, row.code or "", row.answer,
                          row.updated_at.isoformat() if row.updated_at else ""]
                         for row in rows)
        return
    for row in rows:
        answer = _reply(row.code, row.answer)
        click.echo(f"{row.email}: {answer}" if answer else row.email)


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _local(state: State, moment: Any) -> str:
    local: str = moment.astimezone(state.settings.tz).strftime("%Y-%m-%d %H:%M:%S %Z")
    return local


def _dry_run(state: State, rendered: Any, definition: Any, list_recipients: bool,
             segment: str | None) -> None:
    """Build every message; say how many, and who the segment leaves out. With the list,
    the recipients go to stdout as CSV and the report to stderr."""
    import csv

    from ..delivery import dry_run

    each = None
    if list_recipients:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["email", "first_name", "last_name", "organization"])

        def each(r: Recipient) -> None:
            writer.writerow([r.email, r.first_name, r.last_name, r.organization])

    started = time.monotonic()
    done = dry_run(state.db, state.settings, rendered, definition, each, segment=segment)
    elapsed = time.monotonic() - started
    click.echo(f"dry run: {done.built} messages built "
               f"({done.size / max(done.built, 1) / 1024:.0f} KB each on average) in "
               f"{elapsed:.2f} s; nothing sent, nothing logged", err=list_recipients)
    if done.left_out:
        reasons = ", ".join(f"{n} {status}" for status, n in done.left_out.items())
        click.echo(f"left out: {reasons} (only active contacts are mailed)",
                   err=list_recipients)


def _send_tests(state: State, rendered: Any, addresses: tuple[str, ...],
                segment: str | None) -> None:
    from ..delivery import audience_of, send_tests
    from ..message import recipient_from_text

    recipients = []
    for text in addresses:
        try:
            recipients.append(recipient_from_text(text))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--test") from None
    failed = 0
    audience = audience_of(state.existing_db, segment)
    for address, outcome in send_tests(state.settings, rendered, recipients,
                                       audience=audience):
        failed += outcome.kind != "sent"
        detail = "" if outcome.kind == "sent" else f" ({_reply(outcome.code, outcome.message)})"
        click.echo(f"{address}: {outcome.kind}{detail}")
    if failed:
        sys.exit(1)


@main.command()
@click.argument("campaign", required=False)
@click.option("--state", "row_state", type=click.Choice([str(s) for s in DeliveryState]),
              help="List CAMPAIGN's recipients in this state, with the server's last "
                   "answer.")
@click.option("--format", "output", type=click.Choice(["text", "csv"]), default="text",
              show_default=True, help="With --state: lines, or CSV for a spreadsheet.")
@pass_state
def status(state: State, campaign: str | None, row_state: str | None, output: str) -> None:
    """Per campaign sent: recipients per state, start and end, the last errors."""
    from ..delivery import list_sends, send_counts
    from ..delivery.sendlog import last_errors

    if row_state and not campaign:
        raise click.UsageError("--state needs a CAMPAIGN")
    if campaign and campaign.endswith(".md"):  # a path, as other commands take
        campaign = Path(campaign).stem
    sends = list_sends(state.db, campaign=campaign)
    if campaign and not sends:
        from ..campaigns import resolve_campaign_path

        resolve_campaign_path(campaign, state.settings.campaigns_dir)  # it exists?
        raise CitesmailError(f"'{campaign}' has not been sent",
                             f"send it with: citesmail send {campaign}")
    if not sends:
        click.echo("nothing sent yet", err=True)
    if row_state:
        _list_rows(state, sends[0].id, DeliveryState(row_state), output)
        return
    for send in sends:
        found = send_counts(state.db, send.id)
        click.echo(f"{send.campaign} (segment {send.segment or '-'}): {send.state}")
        click.echo("  " + ", ".join(f"{s} {n}" for s, n in found.items()))
        started = _local(state, send.started_at) if send.started_at else "-"
        ended = _local(state, send.finished_at) if send.finished_at else "-"
        planned = (f"scheduled for {_local(state, send.scheduled_at)}, "
                   if send.scheduled_at else "")
        click.echo(f"  {planned}started {started}, finished {ended}")
        for problem in last_errors(state.db, send.id):
            click.echo(f"  {problem.state}: {problem.email}: "
                       f"{_reply(problem.code, problem.error)}")
