"""Commands for the DNS: dns check."""

from __future__ import annotations

import sys

import click

from . import State, main, pass_state

COLUMNS = ("check", "status", "name", "detail")


@main.group()
def dns() -> None:
    """What receivers read in the DNS before they trust your mail: SPF, DKIM, DMARC."""


@dns.command("check")
@click.option("--nameserver", metavar="IP[:PORT]",
              help="Ask this server (e.g. your domain's authoritative one) instead of the "
                   "system resolver.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=5.0,
              metavar="SECONDS",
              show_default=True, help="Seconds to wait for each answer.")
@pass_state
def check(state: State, nameserver: str | None, timeout: float) -> None:
    """Check SPF, the DKIM key, DMARC and their alignment for the From domain.

    Prints one line per check (ok, warning, off, missing or wrong), then the records to
    publish for what is missing or wrong. Exits 1 when something is missing or wrong,
    0 otherwise (warnings included).
    """
    from ..dnscheck import Lookup, check_dns
    from ..tables import line

    settings = state.settings
    report = check_dns(settings, Lookup(nameserver, timeout))
    rows = [(f.check, str(f.status), f.name, f.detail) for f in report.findings]
    # Columns as wide as their values: the detail is never cut, it says what to do.
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    for row in [COLUMNS, *rows]:
        click.echo(line(row, widths))
    if report.records:
        click.echo("\npublish these records (zone-file syntax):")
        for record in report.records:
            click.echo(record)
    if report.failed:
        sys.exit(1)
