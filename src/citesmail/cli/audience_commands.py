"""Commands over the audience store: contacts, lists, segments, db."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path

import click

from ..audience.csvfile import spreadsheet_safe
from ..states import GRANTS, ConsentKind, ContactStatus
from ..tables import fit, line, terminal_width
from . import State, confirm, main, pass_state


@main.group()
def contacts() -> None:
    """Import, add, edit, export, look up, unsubscribe and erase contacts."""


@contacts.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--list", "list_name", metavar="NAME", help="Also add every row to this list.")
@click.option("--update", is_flag=True, help="Update contacts that already exist "
              "(their status is never changed).")
@click.option("--dry-run", is_flag=True, help="Read and check everything, write nothing.")
@click.option("--consent", metavar="TEXT", help="Why you may mail these people (recorded "
              "with each row; default: the list's description).")
@pass_state
def import_(state: State, file: Path, list_name: str | None, update: bool,
            dry_run: bool, consent: str | None) -> None:
    """Import contacts from a CSV FILE (';', ',' or tab; UTF-8 or Windows-1252).

    Columns are recognised by name (email/courriel/mail, prénom, nom, organisme/structure,
    fonction, territoire/commune/ville, langue); other columns are kept as attributes.
    Each row kept is recorded in the contact's consent history (FILE:LINE). A column
    measurement (or mesure) gives each person's consent to measurement: yes/no, oui/non,
    true/false, 1/0, x or empty (nothing said); another value stops the import.
    """
    from ..audience.importer import import_contacts

    with click.progressbar(length=1, label="importing", file=sys.stderr,
                           hidden=not sys.stderr.isatty()) as bar:
        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        report = import_contacts(state.db, file, list_name=list_name, update_existing=update,
                                 dry_run=dry_run, consent=consent, progress=progress)
    for said in report.columns() + report.details():
        click.echo(f"{file}: {said}", err=True)
    click.echo(report.summary())


class _Delimiter(click.Choice[str]):
    """`;`, `,` or `tab`; a tab character typed as such is taken as `tab`. (The help
    would show a raw tab if it were one of the choices.)"""

    def __init__(self) -> None:
        super().__init__([";", ",", "tab"])

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        return super().convert("tab" if value == "\t" else value, param, ctx)


@contacts.command("export")
@click.option("--list", "list_name", metavar="NAME", help="Only the contacts on this list.")
@click.option("--segment", metavar="NAME", help="Only the contacts of this segment.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="File to write (default: standard output).")
@click.option("--delimiter", default=";", show_default=True, type=_Delimiter(),
              help="Column separator (a tab character is taken for tab).")
@click.option("--header-lang", type=click.Choice(["en", "fr"]), default="en",
              show_default=True, help="Language of the column headers (fr: Courriel, "
              "Prénom, Nom, Structure, ...); contacts import reads both.")
@pass_state
def export(state: State, list_name: str | None, segment: str | None, output: Path | None,
           delimiter: str, header_lang: str) -> None:
    """Export contacts as CSV (UTF-8 with BOM, for Excel).

    consent_source and consent_at are the latest consent given (an import's FILE:LINE,
    a form, a command), as contacts show lists it.
    """
    from ..audience.exporter import export_contacts

    if list_name and segment:
        raise click.UsageError("give --list or --segment, not both")
    separator = "\t" if delimiter == "tab" else delimiter
    with state.db.session(write=False) as session:
        if output is None:  # nothing written yet: standard output can change encoding
            sys.stdout.reconfigure(encoding="utf-8-sig", newline="")  # type: ignore[union-attr]
            export_contacts(session, sys.stdout, list_name=list_name, segment=segment,
                            delimiter=separator, header_lang=header_lang)
            return
        temporary = output.with_name(f".{output.name}.tmp")
        with temporary.open("w", encoding="utf-8-sig", newline="") as out:
            count = export_contacts(session, out, list_name=list_name, segment=segment,
                                    delimiter=separator, header_lang=header_lang)
        temporary.replace(output)
    click.echo(f"{count} contacts written to {output}", err=True)


# The fields segments filter on are shown (role, territory, organisation).
LISTED = ("email", "first_name", "last_name", "organization", "role", "territory", "status")
COLUMNS = ("email", "name", "organization", "role", "territory", "status")
WIDEST = (40, 30, 40, 30, 24, 12)  # a column is never wider than this in a table


@contacts.command("list")
@click.option("--list", "list_name", metavar="NAME", help="Only the contacts on this list.")
@click.option("--segment", metavar="NAME", help="Only the contacts of this segment.")
@click.option("--search", metavar="TEXT", help="Only those whose name, address or "
              "organisation holds TEXT (case and accents ignored).")
@click.option("--format", "format_", type=click.Choice(["table", "csv", "json"]),
              default="table", show_default=True,
              help="table fits the terminal and cuts long values with '…'; csv and json "
                   "keep every value whole.")
@pass_state
def list_(state: State, list_name: str | None, segment: str | None, search: str | None,
          format_: str) -> None:
    """List contacts: address, name, organisation, role, territory, status."""
    from ..audience.contacts import select_contacts

    total = 0
    writers: dict[str, Callable[[], Callable[[Rows | None], None]]] = {
        "table": _table_writer, "csv": _csv_writer, "json": _json_writer}
    write = writers[format_]()
    with state.db.session(write=False) as session:
        for batch in select_contacts(session, list_name=list_name, segment=segment,
                                     search=search):
            write([{name: getattr(c, name) or "" for name in LISTED} for c in batch])
            total += len(batch)
            session.expunge_all()
    write(None)
    click.echo(f"{total} contact{'s' if total != 1 else ''}", err=True)


Rows = list[dict[str, str]]


def _table_writer() -> Callable[[Rows | None], None]:
    """Columns sized on the first batch (contacts are streamed), within the terminal."""
    widths: list[int] = []

    def write(rows: Rows | None) -> None:
        cells = [(r["email"], f"{r['first_name']} {r['last_name']}".strip(),
                  r["organization"], r["role"], r["territory"], r["status"])
                 for r in rows or []]
        if not widths:
            natural = [max([len(name), *(len(row[i]) for row in cells)])
                       for i, name in enumerate(COLUMNS)]
            widths.extend(fit([min(n, w) for n, w in zip(natural, WIDEST, strict=True)],
                              terminal_width()))
            click.echo(line(COLUMNS, widths))
        for row in cells:
            click.echo(line(row, widths))

    return write


def _csv_writer() -> Callable[[Rows | None], None]:
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(LISTED)

    def write(rows: Rows | None) -> None:
        out.writerows([spreadsheet_safe(r[name]) for name in LISTED] for r in rows or [])

    return write


def _json_writer() -> Callable[[Rows | None], None]:
    """One JSON array, written as the contacts come: `null` ends it."""
    started = False

    def write(rows: Rows | None) -> None:
        nonlocal started
        if rows is None:
            click.echo("]" if started else "[]")
            return
        for row in rows:
            click.echo(("," if started else "[") + json.dumps(row, ensure_ascii=False))
            started = True

    return write


@contacts.command("show")
@click.argument("email")
@pass_state
def show(state: State, email: str) -> None:
    """Everything stored about one contact."""
    from ..audience.consent import first_words, history
    from ..audience.contacts import find_contact, lists_of, sends_of

    with state.db.session(write=False) as session:
        c = find_contact(session, email)
        rows = [("email", c.email), ("first_name", c.first_name), ("last_name", c.last_name),
                ("organization", c.organization), ("role", c.role),
                ("territory", c.territory), ("lang", c.lang), ("status", c.status),
                ("measurement", "yes" if c.measurement_consent else "no"),
                ("lists", ", ".join(lists_of(session, c.id)) or "(none)"),
                ("created", f"{c.created_at:%Y-%m-%d %H:%M} UTC"),
                ("updated", f"{c.updated_at:%Y-%m-%d %H:%M} UTC")]
        rows += [(f"attr.{k}", v) for k, v in (c.attributes or {}).items()]
        rows += [("send", f"{campaign}: {state}" + (f" at {sent:%Y-%m-%d %H:%M} UTC"
                                                      if sent else ""))
                 for campaign, state, sent in sends_of(session, c.id)]
        rows += [("consent", f"{e.at:%Y-%m-%d %H:%M} UTC {e.kind}"
                  + (f" [{e.list_name}]" if e.list_name else "")
                  + (f" ({e.source})" if e.source else "")
                  + (f": {first_words(e.text)}" if e.text or e.kind in _GIVEN else ""))
                 for e in history(session, c.id)]
    for key, value in rows:
        click.echo(f"{key + ':':<14} {value if value is not None else ''}")


# Events shown with their text: consent to be mailed, and to be measured.
_GIVEN = {str(kind) for kind in (*GRANTS, ConsentKind.MEASUREMENT_ASKED,
                                 ConsentKind.MEASUREMENT_GIVEN)}


MEASUREMENT = click.option(
    "--measurement", type=click.Choice(["yes", "no"]),
    help="They agreed (yes) or no longer agree (no) to have their own clicks and opens "
         "measured; no also deletes those already recorded.")


def _yes_no(value: str | None) -> bool | None:
    return None if value is None else value == "yes"


@contacts.command("add")
@click.argument("email")
@click.option("--first-name", metavar="TEXT")
@click.option("--last-name", metavar="TEXT")
@click.option("--organization", metavar="TEXT")
@click.option("--role", metavar="TEXT")
@click.option("--territory", metavar="TEXT")
@click.option("--list", "lists_", multiple=True, metavar="L", help="Put them on this list "
              "(repeat for several).")
@click.option("--consent", required=True, metavar="TEXT",
              help="Why you may mail them (recorded in their consent history).")
@MEASUREMENT
@pass_state
def add(state: State, email: str, first_name: str | None, last_name: str | None,
        organization: str | None, role: str | None, territory: str | None,
        lists_: tuple[str, ...], consent: str, measurement: str | None) -> None:
    """Add one contact by hand, active at once.

    An address that was erased, bounced, complained or unsubscribed is refused.
    """
    from ..audience.manual import add_contact

    fields = {"first_name": first_name, "last_name": last_name,
              "organization": organization, "role": role, "territory": territory}
    with state.db.session() as session:
        contact = add_contact(session, email, fields, lists_, consent,
                              _yes_no(measurement))
        added = contact.email
    on = f" on {', '.join(dict.fromkeys(lists_))}" if lists_ else ""
    click.echo(f"{added}: added{on}")


@contacts.command("edit")
@click.argument("email")
@click.option("--set", "settings", multiple=True, metavar="FIELD=VALUE",
              help="first_name, last_name, organization, role, territory, lang or "
                   "attr.NAME; an empty VALUE clears it.")
@click.option("--add-list", multiple=True, metavar="L", help="Put them on this list.")
@click.option("--remove-list", multiple=True, metavar="L", help="Take them off this list "
              "(recorded as an unsubscribe from it).")
@click.option("--consent", metavar="TEXT", help="Why they may be on the lists added "
              "(default: each list's description).")
@MEASUREMENT
@pass_state
def edit(state: State, email: str, settings: tuple[str, ...], add_list: tuple[str, ...],
         remove_list: tuple[str, ...], consent: str | None, measurement: str | None) -> None:
    """Change one contact's fields, lists and consent to measurement (their status is not
    changed)."""
    from ..audience.manual import edit_contact

    if not (settings or add_list or remove_list or measurement):
        raise click.UsageError("nothing to change: give --set, --add-list, --remove-list "
                               "or --measurement")
    with state.db.session() as session:
        edited = edit_contact(session, email, settings, add_list, remove_list, consent,
                              _yes_no(measurement))
    said = ([f"{name} set" for name in edited.changed]
            + [f"added to {name}" for name in edited.added]
            + [f"removed from {name}" for name in edited.removed])
    if edited.measurement is not None:
        said.append("measurement " + ("given" if edited.measurement else "withdrawn"))
    click.echo(f"{edited.email}: {', '.join(said) or 'nothing changed'}")


@contacts.command("purge-pending")
@pass_state
def purge_pending(state: State) -> None:
    """Delete the sign-ups never confirmed within [subscribe] pending_days
    (citesmail worker also does it every hour)."""
    from ..audience.pending import purge_pending as purge

    days = state.settings.subscribe.pending_days
    with state.db.session() as session:
        purged = purge(session, days)
    click.echo(f"{purged} pending contact{'s' if purged != 1 else ''} purged "
               f"(unconfirmed for more than {days} days)")


@contacts.command("resubscribe")
@click.argument("email")
@pass_state
def resubscribe(state: State, email: str) -> None:
    """Queue a confirmation email for EMAIL (unsubscribed or pending); the contact stays
    as it is until they follow its link (citesmail serve or worker sends it)."""
    from ..audience.signup import resubscribe as queue_confirmation
    from ..db import utcnow

    with state.db.session() as session:
        queue_confirmation(session, email, state.settings.campaigns.lang, utcnow())
    click.echo(f"{email}: confirmation email queued (citesmail serve or citesmail worker "
               "sends it)")


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
            shown = "public " if s.public else "private"
            click.echo(f"{s.name:<30} {s.members:>8} contacts {s.active:>8} active  "
                       f"{shown}  {s.title}")
        if not summaries:
            click.echo("no lists yet: citesmail lists add NAME", err=True)


@lists.command("add")
@click.argument("name")
@click.option("--title", default="", help="A readable title.")
@click.option("--description", default="", help="What the list is for.")
@click.option("--public/--private", default=False, show_default=True,
              help="Public lists are offered on sign-up forms and the preference page.")
@pass_state
def lists_add(state: State, name: str, title: str, description: str, public: bool) -> None:
    """Create a list NAME (lower-case letters, digits, '-', '_')."""
    from ..audience.lists import add_list

    with state.db.session() as session:
        add_list(session, name, title, description, public)
    click.echo(f"list {name} created ({'public' if public else 'private'})")


@lists.command("edit")
@click.argument("name")
@click.option("--title", help="A new title.")
@click.option("--description", help="A new description.")
@click.option("--public/--private", default=None,
              help="Offer it on sign-up forms and the preference page, or not.")
@pass_state
def lists_edit(state: State, name: str, title: str | None, description: str | None,
               public: bool | None) -> None:
    """Change list NAME: each option given replaces that part, the others stay."""
    from ..audience.lists import edit_list

    if title is None and description is None and public is None:
        raise click.UsageError("nothing to change: give --title, --description, --public "
                               "or --private")
    with state.db.session() as session:
        found = edit_list(session, name, title=title, description=description, public=public)
        shown = "public" if found.public else "private"
    click.echo(f"list {name} saved ({shown})")


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
@click.option("--title", default="", metavar="TEXT", help="What people call it "
              "(shown by segments list and show).")
@click.option("--list", "lists_", multiple=True, metavar="L", help="On any of these lists.")
@click.option("--exclude-list", multiple=True, metavar="L", help="Not on this list.")
@click.option("--where", multiple=True, metavar="COND",
              help="field=value (case and accents ignored), field==value (exact), "
                   "field!=value, field!==value; fields: role, territory, organization, "
                   "lang, domain, attr.NAME. Repeat a field for 'any of'; 'a=x | b=y' "
                   "for any of conditions on different fields.")
@pass_state
def segments_add(state: State, name: str, title: str, lists_: tuple[str, ...],
                 exclude_list: tuple[str, ...], where: tuple[str, ...]) -> None:
    """Save a segment NAME (a warning says so when it matches nobody)."""
    from ..audience.segments import Definition, add_segment, parse_where, steps

    definition = Definition(list(lists_), list(exclude_list),
                            [parse_where(text) for text in where], title.strip())
    with state.db.session() as session:
        add_segment(session, name, definition)
        counts = steps(session, definition)
    _say_saved(name, definition.describe(), counts)


@segments.command("edit")
@click.argument("name")
@click.option("--title", metavar="TEXT", help="A new title.")
@click.option("--list", "lists_", multiple=True, metavar="L", help="On any of these lists "
              "(replaces the segment's lists).")
@click.option("--exclude-list", multiple=True, metavar="L",
              help="Not on this list (replaces the excluded lists).")
@click.option("--where", multiple=True, metavar="COND",
              help="A condition, as for segments add (replaces the conditions).")
@pass_state
def segments_edit(state: State, name: str, title: str | None, lists_: tuple[str, ...],
                  exclude_list: tuple[str, ...], where: tuple[str, ...]) -> None:
    """Change segment NAME: each option given replaces that part, the others stay.

    A send already started keeps its recipients; a scheduled one takes the segment as
    it is at its time.
    """
    from ..audience.segments import edit_segment, parse_where, steps

    if not (lists_ or exclude_list or where or title is not None):
        raise click.UsageError("nothing to change: give --title, --list, --exclude-list or "
                               "--where")
    with state.db.session() as session:
        definition = edit_segment(
            session, name, list(lists_) or None, list(exclude_list) or None,
            [parse_where(text) for text in where] or None,
            title.strip() if title is not None else None)
        counts = steps(session, definition)
    _say_saved(name, definition.describe(), counts)


def _say_saved(name: str, described: str, counts: list[tuple[str, int]]) -> None:
    matched = counts[-1][1]
    click.echo(f"segment {name} saved: {described} ({matched} contacts now)")
    if matched == 0:
        emptied = _emptied_by(counts)
        why = (f"{counts[emptied][0]} removes everyone ({counts[emptied - 1][1]} before it)"
               if emptied else "there is no active contact")
        click.echo(f"warning: segment {name} matches no contact now: {why} "
                   f"(citesmail segments show {name})", err=True)


def _emptied_by(counts: list[tuple[str, int]]) -> int:
    """The position of the part of a segment that left no one."""
    return next(position for position, (_, left) in enumerate(counts) if left == 0)


@segments.command("list")
@pass_state
def segments_list(state: State) -> None:
    """Every segment with its definition and live count."""
    from ..audience.segments import all_segments, count

    with state.db.session(write=False) as session:
        for name, definition in all_segments(session):
            titled = f"{definition.title}: " if definition.title else ""
            click.echo(f"{name:<30} {count(session, definition):>8}  {titled}"
                       f"{definition.describe()}")


@segments.command("show")
@click.argument("name")
@click.option("--limit", default=20, show_default=True, help="Contacts to show.")
@pass_state
def segments_show(state: State, name: str, limit: int) -> None:
    """A segment's count, how many each of its parts leaves, then its first contacts."""
    from ..audience.segments import get_segment, steps, stream

    with state.db.session(write=False) as session:
        _, definition = get_segment(session, name)
        counts = steps(session, definition)
        titled = f" ({definition.title})" if definition.title else ""
        click.echo(f"{name}{titled}: {definition.describe()}")
        click.echo(f"{counts[-1][1]} contacts")
        emptied = _emptied_by(counts) if counts[-1][1] == 0 else None
        for position, (label, left) in enumerate(counts):
            drops = f" (drops {counts[position - 1][1] - left})" if position else ""
            mark = "  ← no contact matches this" if position == emptied else ""
            click.echo(f"  {label}: {left}{drops}{mark}")
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


