"""Commands for DKIM: dkim keygen."""

from __future__ import annotations

from pathlib import Path

import click

from . import main


@main.group()
def dkim() -> None:
    """DKIM signing keys (signing is on when [dkim] selector, domain, private_key are set)."""


@dkim.command("keygen")
@click.option("--selector", required=True, help="e.g. citesmail (any name, one per key).")
@click.option("--domain", required=True, help="The domain of your From address.")
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False),
              default=".", show_default=True, help="Folder for the private key file.")
@click.option("--algorithm", type=click.Choice(["rsa", "ed25519"]), default="rsa",
              show_default=True, help="rsa (2048 bits, checked everywhere) or ed25519 "
              "(RFC 8463: short, but Gmail and Microsoft do not check it yet, so mail "
              "signed with it alone counts as unsigned there).")
def keygen(selector: str, domain: str, output: Path, algorithm: str) -> None:
    """Write a private key and print the DNS TXT record to publish (and a first DMARC
    record for the domain)."""
    from ..dkim_keys import dns_name, generate
    from ..dnsrecords import DMARC_NEXT_STEP, dmarc_name, dmarc_suggestion, txt_line

    path, record = generate(selector, domain, output,
                            "ed25519" if algorithm == "ed25519" else "rsa")
    click.echo(f"private key: {path} (keep it secret; set [dkim] private_key to it)")
    click.echo("publish this DNS record, then set [dkim] selector and domain:")
    click.echo(txt_line(dns_name(selector, domain), record))
    click.echo(f"and, unless {domain} has one already, a DMARC record to start with:")
    click.echo(txt_line(dmarc_name(domain), dmarc_suggestion(domain)))
    click.echo(f"({DMARC_NEXT_STEP})")
    click.echo("then see what the DNS says: citesmail dns check")
