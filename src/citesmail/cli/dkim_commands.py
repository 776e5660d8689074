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
def keygen(selector: str, domain: str, output: Path) -> None:
    """Write an RSA 2048 private key and print the DNS TXT record to publish."""
    from ..dkim_keys import dns_name, generate

    path, record = generate(selector, domain, output)
    click.echo(f"private key: {path} (keep it secret; set [dkim] private_key to it)")
    click.echo("publish this DNS record, then set [dkim] selector and domain:")
    click.echo(f'{dns_name(selector, domain)}. IN TXT "{record}"')
