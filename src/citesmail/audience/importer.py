"""`contacts import`: a spreadsheet into contacts (and a list), in one transaction."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..db import (
    ConsentEvent,
    Contact,
    Database,
    MailingList,
    Membership,
    Suppression,
    column_length,
    utcnow,
)
from ..errors import CitesmailError, Problem
from ..folding import contact_keys
from ..states import ConsentKind
from .addresses import AddressError, address_hash, normalize_address
from .bulk import db_value, insert_rows, reserve_ids
from .consent import SOURCE_LENGTH, store_text
from .csvfile import (
    FIELDS,
    FORMULA_STARTS,
    MEASUREMENT,
    MEASUREMENT_VALUES,
    NotYesNo,
    Sheet,
    from_spreadsheet,
    read_sheet,
    spreadsheet_safe,
    yes_no,
)
from .lists import get_list, insert_ignoring_duplicates
from .measurement import Wish, set_consent

CHUNK = 500  # keys per IN (...) query: under SQLite's variable limit everywhere
INSERT_CHUNK = 10_000  # rows per bulk insert: large enough to amortise, small for progress


@dataclass
class ImportReport:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    suppressed: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[tuple[int, str]] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)  # headers kept as attributes
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (column, why)
    dry_run: bool = False

    def columns(self) -> list[str]:
        """What became of the columns that are not contact fields: said once an import."""
        return ([f"column '{header}' → attribute '{header}'" for header in self.attributes]
                + [f"column {column} ignored: {why}" for column, why in self.ignored])

    def summary(self) -> str:
        parts = [f"{self.imported} imported", f"{self.updated} updated",
                 f"{len(self.rejected)} rejected",
                 f"{len(self.duplicates)} duplicate{'s' if len(self.duplicates) != 1 else ''}"]
        if self.unchanged:
            parts.append(f"{self.unchanged} already present (use --update to update them)")
        if self.suppressed:
            parts.append(f"{len(self.suppressed)} erased address"
                         f"{'es' if len(self.suppressed) != 1 else ''} skipped")
        text = ", ".join(parts)
        return f"dry run, nothing written: {text}" if self.dry_run else text

    def details(self) -> list[str]:
        lines = [f"line {n}: rejected: {why}" for n, why in self.rejected]
        lines += [f"line {n}: duplicate: {why}" for n, why in self.duplicates]
        lines += [f"line {n}: skipped: {email} was erased (suppression list)"
                  for n, email in self.suppressed]
        lines += [f"line {n}: warning: {why}" for n, why in self.warnings]
        return sorted(lines, key=lambda text: int(text.split(":")[0].split()[1]))


@dataclass
class Row:
    line: int
    email: str
    key: str
    domain: str
    fields: dict[str, str | None]
    attributes: dict[str, str]
    measurement: bool | None = None  # the measurement column: None when empty or absent


_MESSY = re.compile(r"\s\x00|\x00\s|^\s|\s$|\s\s|[\n\r\t\x0b\x0c]")
_MARKED = re.compile(r"(?:^|\x00)'[=+@-]")  # a cell as `contacts export` protects it


def _tidy(cells: list[str]) -> list[str]:
    """Cells trimmed, without newlines or runs of spaces inside, and without the
    apostrophe an export puts before formula-like values (checked once a row: most rows
    are clean already)."""
    joined = "\x00".join(cells)
    if _MESSY.search(joined):
        cells = [" ".join(cell.split()) for cell in cells]
        joined = "\x00".join(cells)
    if "'" in joined and _MARKED.search(joined):  # the first test is much the faster
        cells = [from_spreadsheet(cell) for cell in cells]
    return cells


# Columns `contacts export` writes (in English or French) that an import does not take.
_NEVER_CHANGES = "an import never changes a status"
_LIST_OPTION = "give the list with --list"
_OWN_CONSENT = "an import records its own consent (give the text with --consent)"
_EXPORT_ONLY = {"status": _NEVER_CHANGES, "statut": _NEVER_CHANGES,
                "lists": _LIST_OPTION, "listes": _LIST_OPTION,
                "consent_source": _OWN_CONSENT, "consent_at": _OWN_CONSENT,
                "source du consentement": _OWN_CONSENT, "date du consentement": _OWN_CONSENT}


def _attribute_columns(sheet: Sheet, report: ImportReport) -> list[tuple[int, str]]:
    """The columns kept as attributes, by index and header, with a warning for those
    that look wrong or are left out."""
    kept = []
    for index, header in enumerate(sheet.headers):
        if index in sheet.columns:
            continue
        if not header:
            report.ignored.append((f"{index + 1}", "it has no header"))
            continue
        if header.lower() in _EXPORT_ONLY:
            report.ignored.append((f"'{header}'", _EXPORT_ONLY[header.lower()]))
            continue
        if header.startswith(FORMULA_STARTS):
            # Kept (the export protects it), but more often the sign of a tampered or
            # shifted file than a name someone chose.
            report.warnings.append((1, f"column '{header}' looks like a spreadsheet formula; "
                                       "kept as an attribute, exported as "
                                       f"'{spreadsheet_safe(header)}'"))
        kept.append((index, header))
        report.attributes.append(header)
    return kept


# What the contacts columns hold. PostgreSQL refuses longer text (and with it the whole
# import) where SQLite would store it: on both, such a row is rejected instead.
_MAX_LENGTH = {name: column_length(Contact, name)
               for name in FIELDS}
_LENGTH_HINT = {"lang": " (a language code, such as fr)"}


def _length_checks(sheet: Sheet) -> list[tuple[int, str, int, str]]:
    """(column index, header, limit, hint) for the columns mapped to contact fields."""
    return [(index, sheet.headers[index], _MAX_LENGTH[name], _LENGTH_HINT.get(name, ""))
            for index, name in sheet.columns.items() if name not in ("email", MEASUREMENT)]


def _too_long(cells: list[str], checks: list[tuple[int, str, int, str]]) -> str | None:
    for index, header, limit, hint in checks:
        if len(cells[index]) > limit:
            return f"{header}: {len(cells[index])} characters, at most {limit}{hint}"
    return None


SHOWN_PROBLEMS = 20  # bad measurement cells said before the import stops


def _measurement(cells: list[str], at: int | None, line: int, sheet: Sheet,
                 problems: list[Problem]) -> bool | None:
    """The row's consent to measurement; a cell that is not yes or no is a problem."""
    if at is None:
        return None
    try:
        return yes_no(cells[at])
    except NotYesNo:
        problems.append(Problem(
            f"{sheet.headers[at]}: {cells[at]!r} is neither yes nor no",
            f"write {MEASUREMENT_VALUES}; nothing was imported", sheet.path, line, at + 1))
        return None


def parse_rows(sheet: Sheet, report: ImportReport) -> list[Row]:
    """Valid rows, first occurrence of each address; the rest goes into the report. A
    measurement cell that says neither yes nor no stops the import (CitesmailError
    naming file, line and column): consent is not guessed."""
    width = len(sheet.headers)
    by_field = {field: index for index, field in sheet.columns.items()}
    email_at = by_field["email"]
    measurement_at = by_field.get(MEASUREMENT)
    problems: list[Problem] = []
    fields = [(name, by_field.get(name)) for name in FIELDS if name != "email"]
    extras = _attribute_columns(sheet, report)
    checks = _length_checks(sheet)
    seen: dict[str, int] = {}
    rows: list[Row] = []
    for line, raw_cells in sheet.rows:
        cells = _tidy(raw_cells)
        if not any(cells):
            continue
        if len(cells) > width and any(cells[width:]):
            report.rejected.append((line, f"{len(cells)} values but the header has {width} "
                                          "columns (a separator inside a value?)"))
            continue
        if len(cells) < width:
            cells += [""] * (width - len(cells))
        raw = cells[email_at]
        if not raw:
            report.rejected.append((line, "no email address"))
            continue
        try:
            address = normalize_address(raw)
        except AddressError as exc:
            report.rejected.append((line, f"{raw}: {exc}"))
            continue
        too_long = _too_long(cells, checks)
        if too_long:
            report.rejected.append((line, too_long))
            continue
        if address.key in seen:
            report.duplicates.append((line, f"{address.email} is already on line "
                                            f"{seen[address.key]}"))
            continue
        seen[address.key] = line
        known = {name: (cells[index] or None) if index is not None else None
                 for name, index in fields}
        extra = {header: cells[index] for index, header in extras if cells[index]}
        measured = _measurement(cells, measurement_at, line, sheet, problems)
        rows.append(Row(line, address.email, address.key, address.domain, known, extra,
                        measured))
    if problems:
        raise CitesmailError.from_problems(problems[:SHOWN_PROBLEMS])
    return rows


def _chunks(items: list[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _empty(session: Session, model: type[Any]) -> bool:
    return session.scalar(select(model.__table__.c[0]).limit(1)) is None


@dataclass
class Stored:
    """A contact already in the database, as an update needs it."""

    id: int
    fields: dict[str, Any]  # the values its folded columns are made from
    attributes: dict[str, str]


_STORED = (Contact.first_name, Contact.last_name, Contact.organization, Contact.role,
           Contact.territory)


def _existing(session: Session, keys: list[str]) -> dict[str, Stored]:
    found: dict[str, Stored] = {}
    if _empty(session, Contact):
        return found
    for chunk in _chunks(keys):
        query = select(Contact.email_key, Contact.id, Contact.attributes, *_STORED).where(
            Contact.email_key.in_(chunk))
        for key, contact_id, attributes, *values in session.execute(query):
            fields = {column.key: value for column, value in zip(_STORED, values, strict=True)}
            found[key] = Stored(contact_id, fields, attributes or {})
    return found


def _suppressed(session: Session, keys: list[str]) -> set[str]:
    found: set[str] = set()
    if _empty(session, Suppression):
        return found
    hashes = {address_hash(key): key for key in keys}
    for chunk in _chunks(list(hashes)):
        query = select(Suppression.address_hash).where(Suppression.address_hash.in_(chunk))
        found.update(hashes[h] for h in session.scalars(query))
    return found


def import_contacts(
    db: Database,
    path: Path,
    *,
    list_name: str | None = None,
    update_existing: bool = False,
    dry_run: bool = False,
    consent: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Every row kept gets a consent event (`import`, source FILE:LINE) with the text
    `consent`, else the list's description, else "import"."""
    report = ImportReport(dry_run=dry_run)
    sheet = read_sheet(path)
    rows = parse_rows(sheet, report)
    with db.session(rollback=dry_run) as session:
        chosen = get_list(session, list_name) if list_name else None
        list_id = chosen.id if chosen else None
        suppressed = _suppressed(session, [row.key for row in rows])
        report.suppressed = [(r.line, r.email) for r in rows if r.key in suppressed]
        rows = [row for row in rows if row.key not in suppressed]
        existing = _existing(session, [row.key for row in rows])
        now = utcnow()
        member_ids: list[int] = []
        fresh = [row for row in rows if row.key not in existing]
        for done, chunk in enumerate(_chunks(fresh, INSERT_CHUNK), start=1):
            member_ids += _insert(session, chunk, now)
            if progress:
                progress(min(done * INSERT_CHUNK, len(fresh)), len(rows))
        report.imported = len(fresh)
        known = [row for row in rows if row.key in existing]
        if update_existing and known:
            _update(session, known, existing, now)
            report.updated = len(known)
        else:
            report.unchanged = len(known)
        if list_id is not None:
            _add_members(session, list_id, new_ids=member_ids,
                         known_ids=[existing[row.key].id for row in known], now=now)
        text = consent or (chosen.description if chosen else "") or "import"
        ids = dict(zip((row.key for row in fresh), member_ids, strict=True))
        ids.update((row.key, existing[row.key].id) for row in known)
        _record_rows(session, [(ids[row.key], row.line) for row in rows], path.name,
                     chosen, store_text(session, text), now)
        taken = fresh + known if update_existing else fresh
        set_consent(session, [Wish(ids[row.key], row.measurement, f"{path.name}:{row.line}")
                              for row in taken if row.measurement is not None], at=now)
    return report


_EVENT_COLUMNS = ("id", "contact_id", "list_id", "list_name", "kind", "source", "at",
                  "consent_text_hash")


def _record_rows(session: Session, rows: list[tuple[int, int]], file_name: str,
                 chosen: MailingList | None, digest: str, now: datetime) -> None:
    """One `import` event for each (contact id, line), in bulk."""
    table = ConsentEvent.__table__
    stamp = db_value(session, table, "at", now)  # type: ignore[arg-type]
    list_id, list_name = (chosen.id, chosen.name) if chosen else (None, None)
    # A file name may be as long as the column: the source is cut, not refused.
    name = file_name[: SOURCE_LENGTH - 12]
    kind = str(ConsentKind.IMPORT)
    for chunk in _chunks(rows, INSERT_CHUNK):
        ids = reserve_ids(session, table, len(chunk))  # type: ignore[arg-type]
        insert_rows(session, table, _EVENT_COLUMNS, [  # type: ignore[arg-type]
            (event_id, contact_id, list_id, list_name, kind, f"{name}:{line}", stamp, digest)
            for event_id, (contact_id, line) in zip(ids, chunk, strict=True)])


_CONTACT_COLUMNS = ("id", "email", "email_key", "domain", "first_name", "last_name",
                    "organization", "role", "territory", "lang", "attributes", "status",
                    "created_at", "updated_at",
                    "role_key", "territory_key", "organization_key", "attributes_key",
                    "search_key")


# One encoder for the whole import: json.dumps with any option makes a new one per call.
_JSON = json.JSONEncoder(ensure_ascii=False)


def _as_json(value: dict[str, str]) -> str:
    return _JSON.encode(value) if value else "{}"


def _keys(row: Row) -> tuple[Any, ...]:
    keys = contact_keys({**row.fields, "email": row.email, "attributes": row.attributes})
    return (keys["role_key"], keys["territory_key"], keys["organization_key"],
            _as_json(keys["attributes_key"]), keys["search_key"])


def _insert(session: Session, rows: list[Row], now: datetime) -> list[int]:
    """New contacts, in bulk; returns their ids in row order."""
    table = Contact.__table__
    ids = reserve_ids(session, table, len(rows))  # type: ignore[arg-type]
    stamp = db_value(session, table, "created_at", now)  # type: ignore[arg-type]
    values = [
        (contact_id, r.email, r.key, r.domain, r.fields["first_name"], r.fields["last_name"],
         r.fields["organization"], r.fields["role"], r.fields["territory"], r.fields["lang"],
         _as_json(r.attributes), "active", stamp, stamp, *_keys(r))
        for contact_id, r in zip(ids, rows, strict=True)
    ]
    insert_rows(session, table, _CONTACT_COLUMNS, values)  # type: ignore[arg-type]
    return ids


def _add_members(session: Session, list_id: int, *, new_ids: list[int],
                 known_ids: list[int], now: datetime) -> None:
    """New contacts cannot be members yet: bulk; known ones may be: skip duplicates."""
    table = Membership.__table__
    stamp = db_value(session, table, "added_at", now)  # type: ignore[arg-type]
    insert_rows(session, table, ("list_id", "contact_id", "added_at"),  # type: ignore[arg-type]
                [(list_id, cid, stamp) for cid in new_ids])
    for chunk in _chunks(known_ids, 5000):
        insert_ignoring_duplicates(session, Membership, [
            {"list_id": list_id, "contact_id": cid, "added_at": now} for cid in chunk])


def _update(session: Session, rows: list[Row], existing: dict[str, Stored],
            now: datetime) -> None:
    """New non-empty values replace old ones; the status is never touched."""
    values = []
    for row in rows:
        stored = existing[row.key]
        changes: dict[str, Any] = {k: v for k, v in row.fields.items() if v is not None}
        attributes = {**stored.attributes, **row.attributes}
        keys = contact_keys({**stored.fields, **changes, "email": row.email,
                             "attributes": attributes})
        values.append({"id": stored.id, "email": row.email, **changes,
                       "attributes": attributes, **keys, "updated_at": now})
    for chunk in _chunks(values, 2000):
        session.execute(update(Contact), chunk)
