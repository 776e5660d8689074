"""Commands over the audience store: contacts, lists, segments, db."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..states import ContactStatus
from . import State, confirm, main, pass_state


@main.group()
def contacts() -> None:
    """Import, export, look up, unsubscribe and erase contacts."""


@contacts.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--list", "list_name", metavar="NAME", help="Also add every row to this list.")
@click.option("--update", is_flag=True, help="Update contacts that already exist "
              "(their status is never changed).")
@click.option("--dry-run", is_flag=True, help="Read and check everything, write nothing.")
@pass_state
def import_(state: State, file: Path, list_name: str | None, update: bool,
            dry_run: bool) -> None:
    """Import contacts from a CSV FILE (';', ',' or tab; UTF-8 or Windows-1252).

    Columns are recognised by name (email/courriel/mail, prénom, nom, organisme/structure,
    fonction, territoire/commune/ville, langue); other columns are kept as attributes.
    """
    from ..audience.importer import import_contacts

    with click.progressbar(length=1, label="importing", file=sys.stderr,
                           hidden=not sys.stderr.isatty()) as bar:
        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        report = import_contacts(state.db, file, list_name=list_name, update_existing=update,
                                 dry_run=dry_run, progress=progress)
    for line in report.details():
        click.echo(f"{file}: {line}", err=True)
    click.echo(report.summary())


@contacts.command("export")
@click.option("--list", "list_name", metavar="NAME", help="Only the contacts on this list.")
@click.option("--segment", metavar="NAME", help="Only the contacts of this segment.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="File to write (default: standard output).")
@click.option("--delimiter", default=";", show_default=True,
              type=click.Choice([";", ",", "\t", "tab"]), help="Column separator.")
@pass_state
def export(state: State, list_name: str | None, segment: str | None, output: Path | None,
           delimiter: str) -> None:
    """Export contacts as CSV (UTF-8 with BOM, for Excel)."""
    from ..audience.exporter import export_contacts

    if list_name and segment:
        raise click.UsageError("give --list or --segment, not both")
    separator = "\t" if delimiter == "tab" else delimiter
    with state.db.session(write=False) as session:
        if output is None:  # nothing written yet: standard output can change encoding
            sys.stdout.reconfigure(encoding="utf-8-sig", newline="")  # type: ignore[union-attr]
            export_contacts(session, sys.stdout, list_name=list_name, segment=segment,
                            delimiter=separator)
            return
        temporary = output.with_name(f".{output.name}.tmp")
        with temporary.open("w", encoding="utf-8-sig", newline="") as out:
            count = export_contacts(session, out, list_name=list_name, segment=segment,
                                    delimiter=separator)
        temporary.replace(output)
    click.echo(f"{count} contacts written to {output}", err=True)


@contacts.command("list")
@click.option("--list", "list_name", metavar="NAME", help="Only the contacts on this list.")
@click.option("--segment", metavar="NAME", help="Only the contacts of this segment.")
@pass_state
def list_(state: State, list_name: str | None, segment: str | None) -> None:
    """List contacts: address, name, organisation, territory, status."""
    from ..audience.contacts import select_contacts

    total = 0
    with state.db.session(write=False) as session:
        for batch in select_contacts(session, list_name=list_name, segment=segment):
            for c in batch:
                name = " ".join(p for p in (c.first_name, c.last_name) if p)
                click.echo(f"{c.email:<40} {name[:28]:<28} {(c.organization or '')[:28]:<28} "
                           f"{(c.territory or '')[:20]:<20} {c.status}")
            total += len(batch)
            session.expunge_all()
    click.echo(f"{total} contact{'s' if total != 1 else ''}", err=True)


@contacts.command("show")
@click.argument("email")
@pass_state
def show(state: State, email: str) -> None:
    """Everything stored about one contact."""
    from ..audience.contacts import find_contact, lists_of, sends_of

    with state.db.session(write=False) as session:
        c = find_contact(session, email)
        rows = [("email", c.email), ("first_name", c.first_name), ("last_name", c.last_name),
                ("organization", c.organization), ("role", c.role),
                ("territory", c.territory), ("lang", c.lang), ("status", c.status),
                ("lists", ", ".join(lists_of(session, c.id)) or "(none)"),
                ("consent", f"{c.consent_source or '?'} at {c.consent_at:%Y-%m-%d %H:%M} UTC"
                 if c.consent_at else c.consent_source),
                ("created", f"{c.created_at:%Y-%m-%d %H:%M} UTC"),
                ("updated", f"{c.updated_at:%Y-%m-%d %H:%M} UTC")]
        rows += [(f"attr.{k}", v) for k, v in (c.attributes or {}).items()]
        rows += [("send", f"{campaign}: {state}" + (f" at {sent:%Y-%m-%d %H:%M} UTC"
                                                      if sent else ""))
                 for campaign, state, sent in sends_of(session, c.id)]
    for key, value in rows:
        click.echo(f"{key + ':':<14} {value if value is not None else ''}")


@contacts.command("unsubscribe")
@click.argument("emails", nargs=-1, required=True)
@pass_state
def unsubscribe(state: State, emails: tuple[str, ...]) -> None:
    """Mark contacts unsubscribed: they will never be mailed again."""
    from ..audience.contacts import unsubscribe as do_unsubscribe

    with state.db.session() as session:
        before = do_unsubscribe(session, emails)
    lines = [f"{email}: unsubscribed" if status == ContactStatus.ACTIVE else
             f"{email}: already {status}" for email, status in before]
    click.echo("\n".join(lines))


@contacts.command("delete")
@click.argument("emails", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def delete(state: State, emails: tuple[str, ...], yes: bool) -> None:
    """Erase contacts (personal data removed; a hash of the address is kept so that
    no later import adds them back)."""
    from ..audience.contacts import erase

    confirm(f"Erase {len(emails)} contact(s) for good?", yes,
            "add --yes to erase without a question")
    with state.db.session() as session:
        erased = erase(session, emails)
    click.echo("\n".join(f"{email}: erased" for email in erased))


@main.group(invoke_without_command=True)
@click.pass_context
def lists(ctx: click.Context) -> None:
    """Mailing lists; without a subcommand, every list with its counts."""
    if ctx.invoked_subcommand is None:
        from ..audience.lists import list_summaries

        state = ctx.find_object(State)
        assert state is not None
        with state.db.session(write=False) as session:
            summaries = list_summaries(session)
        for s in summaries:
            click.echo(f"{s.name:<30} {s.members:>8} contacts {s.active:>8} active  {s.title}")
        if not summaries:
            click.echo("no lists yet: citesmail lists add NAME", err=True)


@lists.command("add")
@click.argument("name")
@click.option("--title", default="", help="A readable title.")
@click.option("--description", default="", help="What the list is for.")
@pass_state
def lists_add(state: State, name: str, title: str, description: str) -> None:
    """Create a list NAME (lower-case letters, digits, '-', '_')."""
    from ..audience.lists import add_list

    with state.db.session() as session:
        add_list(session, name, title, description)
    click.echo(f"list {name} created")


@lists.command("remove")
@click.argument("name")
@pass_state
def lists_remove(state: State, name: str) -> None:
    """Remove a list (its contacts stay)."""
    from ..audience.lists import remove_list

    with state.db.session() as session:
        members = remove_list(session, name)
    click.echo(f"list {name} removed ({members} memberships)")


@main.group()
def segments() -> None:
    """Saved audience filters, used by send and schedule."""


@segments.command("add")
@click.argument("name")
@click.option("--list", "lists_", multiple=True, metavar="L", help="On any of these lists.")
@click.option("--exclude-list", multiple=True, metavar="L", help="Not on this list.")
@click.option("--where", multiple=True, metavar="COND",
              help="field=value, field!=value, attr.NAME=value, domain=value; fields: role, "
                   "territory, organization, lang, domain. Repeat a field for 'any of'.")
@pass_state
def segments_add(state: State, name: str, lists_: tuple[str, ...],
                 exclude_list: tuple[str, ...], where: tuple[str, ...]) -> None:
    """Save a segment NAME."""
    from ..audience.segments import Definition, add_segment, count, parse_condition

    definition = Definition(list(lists_), list(exclude_list),
                            [parse_condition(text) for text in where])
    with state.db.session() as session:
        add_segment(session, name, definition)
        matched = count(session, definition)
    click.echo(f"segment {name} saved: {definition.describe()} ({matched} contacts now)")


@segments.command("list")
@pass_state
def segments_list(state: State) -> None:
    """Every segment with its definition and live count."""
    from ..audience.segments import all_segments, count

    with state.db.session(write=False) as session:
        for name, definition in all_segments(session):
            click.echo(f"{name:<30} {count(session, definition):>8}  {definition.describe()}")


@segments.command("show")
@click.argument("name")
@click.option("--limit", default=20, show_default=True, help="Contacts to show.")
@pass_state
def segments_show(state: State, name: str, limit: int) -> None:
    """A segment's count, then its first contacts."""
    from ..audience.segments import count, get_segment, stream

    with state.db.session(write=False) as session:
        _, definition = get_segment(session, name)
        click.echo(f"{name}: {definition.describe()}")
        click.echo(f"{count(session, definition)} contacts")
        for batch in stream(session, definition, batch=max(limit, 1)):
            for contact in batch[:limit]:
                click.echo(f"  {contact.email}")
            break


@segments.command("remove")
@click.argument("name")
@pass_state
def segments_remove(state: State, name: str) -> None:
    """Remove a segment (no contact is touched)."""
    from ..audience.segments import remove_segment

    with state.db.session() as session:
        remove_segment(session, name)
    click.echo(f"segment {name} removed")


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@pass_state
def db_upgrade(state: State) -> None:
    """Apply pending migrations (commands also do this when they open the database)."""
    from ..db import HEAD, current_revision, make_engine

    settings = state.settings
    engine = make_engine(settings.database_url, settings.database.busy_timeout)
    before = current_revision(engine)
    engine.dispose()
    _ = state.db  # opening the database applies the migrations

    if before == HEAD:
        click.echo(f"already at schema {HEAD}")
    else:
        click.echo(f"upgraded from {before or 'empty'} to {HEAD}")


