"""Commands that schedule: schedule, schedules, unschedule, worker."""

from __future__ import annotations

import logging
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ..errors import CitesmailError
from ..states import SendState
from . import State, main, pass_state
from .delivery_commands import _local, _stop_on_signals


@main.command()
@click.argument("campaign")
@click.option("--at", "at", required=True, metavar='"YYYY-MM-DD HH:MM"',
              help="When to send, in --tz (seconds allowed: HH:MM:SS).")
@click.option("--tz", "zone", metavar="ZONE", help="Time zone of --at (default: "
              "[schedule] timezone, Europe/Paris).")
@click.option("--segment", metavar="NAME", help="Segment (default: the campaign's audience).")
@pass_state
def schedule(state: State, campaign: str, at: str, zone: str | None,
             segment: str | None) -> None:
    """Send CAMPAIGN at a given time (citesmail worker must be running then).

    The campaign is rendered and stored now: the send uses this version.
    Scheduling the same campaign again replaces its schedule.
    """
    from ..audience.segments import count, get_segment
    from ..campaigns import resolve_campaign_path
    from ..delivery import file_hash
    from ..delivery.transports import check_sending_secret
    from ..render import render_campaign
    from ..scheduler import parse_local_time, schedule_send
    from .campaign_commands import _load, say_alignment

    settings = state.settings
    check_sending_secret(settings)  # now, rather than in the worker at the chosen time
    zone = zone or settings.schedule.timezone
    when = parse_local_time(at, zone)
    path = resolve_campaign_path(campaign, settings.campaigns_dir)
    rendered = render_campaign(_load(settings, path), settings)
    from .campaign_commands import check_timing

    if when.moment > datetime.now(UTC):  # a time past is refused below anyway
        check_timing(rendered.campaign, when.moment)  # as it will be then
    name = segment or rendered.campaign.audience
    if not name:
        raise CitesmailError("no segment to send to",
                             'give --segment NAME, or set audience = "NAME" in the campaign')
    with state.db.session(write=False) as session:
        recipients = count(session, get_segment(session, name)[1])
    replaced = schedule_send(state.db, settings, rendered, name, file_hash(path), when)
    if when.ambiguous:
        click.echo(f"note: {at} happens twice in {zone} (clocks go back); the first one is "
                   "used", err=True)
    utc = when.moment.astimezone(UTC)
    click.echo(f"'{rendered.slug}' {'re' if replaced else ''}scheduled for "
               f"{when.moment:%Y-%m-%d %H:%M:%S %Z} ({utc:%Y-%m-%d %H:%M:%S} UTC) to segment "
               f"{name} ({recipients} recipients now)")
    say_alignment(settings)
    _say_worker(state)


def _say_worker(state: State) -> None:
    """Whether a worker will send the scheduled campaigns, and how to start one."""
    from ..scheduler import worker_holder

    holder = worker_holder(state.db)
    if holder is None:
        click.echo("note: no citesmail worker is running for this database: start one "
                   "(citesmail worker, or citesmail worker --systemd for a service) before "
                   "the time comes, or the send is missed", err=True)
    else:
        click.echo(f"a citesmail worker is running ({holder}): it sends at the time",
                   err=True)


@main.command()
@pass_state
def schedules(state: State) -> None:
    """Scheduled sends, pending, running, done or missed: when, to which segment, and how
    many recipients (the segment's members now; the snapshot once the send started)."""
    from ..delivery import file_hash, list_sends

    sends = list_sends(state.db, scheduled=True)
    if not sends:
        click.echo("no scheduled sends", err=True)
    _say_worker(state)
    for send in sends:
        recipients = f"{send.recipients} recipients" if send.recipients else \
            _members_now(state, send.segment or "")
        click.echo(f"{send.campaign:<40} {send.state:<9} {_local(state, send.scheduled_at)}"
                   f"  segment {send.segment} ({recipients})")
        source = state.settings.campaigns_dir / f"{send.campaign}.md"
        if send.state == SendState.SCHEDULED and source.exists() and \
                file_hash(source) != send.source_hash:
            click.echo("  warning: the campaign file changed since it was scheduled; "
                       "the scheduled version will be sent (schedule it again to update)")


def _members_now(state: State, segment: str) -> str:
    from ..audience.segments import count, get_segment

    try:
        with state.db.session(write=False) as session:
            return f"{count(session, get_segment(session, segment)[1])} now"
    except CitesmailError:  # a removed segment: say so rather than fail the listing
        return "segment missing"


@main.command()
@click.argument("campaign")
@pass_state
def unschedule(state: State, campaign: str) -> None:
    """Cancel the scheduled send of CAMPAIGN."""
    from ..scheduler import unschedule as do_unschedule

    do_unschedule(state.db, state.settings, campaign)
    click.echo(f"'{campaign}' unscheduled")


@main.command()
@click.option("--systemd", is_flag=True, help="Print a systemd unit that runs this "
              "workspace's worker as a service, and exit.")
@pass_state
def worker(state: State, systemd: bool) -> None:
    """Run scheduled sends at their time, and resume interrupted ones (one per database).

    Logs each event on standard output. Ctrl-C or SIGTERM finishes the messages in
    hand and stops; what is left resumes at the next start.
    """
    from ..delivery.transports import check_sending_secret
    from ..scheduler import run_worker

    if systemd:
        click.echo(_systemd_unit(state), nl=False)
        return
    check_sending_secret(state.settings)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_ZonedFormatter(state.settings.tz))
    logging.basicConfig(level=logging.INFO, force=True, handlers=[handler])
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    stop = threading.Event()
    with _stop_on_signals(stop):
        run_worker(state.db, state.settings, stop)


def _systemd_unit(state: State) -> str:
    """A unit for /etc/systemd/system/: the secrets go in an EnvironmentFile that only
    the service's user reads, never in the unit."""
    workspace = state.settings.workspace.resolve()
    config = (state.settings.config_path or workspace / "config.toml").resolve()
    command = Path(sys.argv[0]).resolve() if Path(sys.argv[0]).name == "citesmail" \
        else Path(sys.executable).parent / "citesmail"
    return (f"[Unit]\nDescription=citesmail worker for {workspace}\n"
            "After=network-online.target\nWants=network-online.target\n\n"
            f"[Service]\nType=simple\nWorkingDirectory={workspace}\n"
            "# CITESMAIL_SECRET=... and CITESMAIL_SMTP_PASSWORD=..., mode 600:\n"
            f"EnvironmentFile={workspace}/.citesmail/worker.env\n"
            f"ExecStart={command} --config {config} worker\n"
            "KillSignal=SIGTERM\nTimeoutStopSec=120\nRestart=on-failure\nRestartSec=10\n\n"
            "[Install]\nWantedBy=multi-user.target\n")


class _ZonedFormatter(logging.Formatter):
    """Log times in [schedule] timezone, zone shown, as schedule and status print them."""

    def __init__(self, tz: Any) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")
        self.tz = tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, self.tz)
        offset = moment.isoformat()[-6:]  # +01:00, as the times in the messages
        return f"{moment:%Y-%m-%d %H:%M:%S},{moment.microsecond // 1000:03d}{offset}"
