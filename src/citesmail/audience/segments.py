"""Segments: saved filters over contacts, evaluated in SQL and streamed by id.

A segment is lists (any of), excluded lists, and conditions: `field=value` (a field
repeated is any of), `field!=value`, `attr.NAME=value`, `domain=value`; different fields
must all hold. Only active contacts ever match.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select, true
from sqlalchemy.orm import Session

from ..db import Contact, Membership, Segment
from ..errors import CitesmailError, known_names, unknown_name
from ..states import ContactStatus
from .addresses import AddressError, normalize_domain
from .lists import check_name, get_list

FIELDS = ("role", "territory", "organization", "lang", "domain")
_CONDITION = re.compile(r"^\s*(attr\.[^=!]+|[A-Za-z_]+)\s*(!=|=)\s*(.*?)\s*$", re.S)


@dataclass(frozen=True)
class Condition:
    field: str  # a name of FIELDS, or attr.NAME
    negated: bool
    value: str

    def __str__(self) -> str:
        return f"{self.field}{'!=' if self.negated else '='}{self.value}"


def parse_condition(text: str) -> Condition:
    match = _CONDITION.match(text)
    if not match:
        raise CitesmailError(f"cannot read condition '{text}'",
                             "write field=value or field!=value, e.g. territory=Lyon")
    name, operator, value = match.groups()
    name = name.strip()
    if not name.startswith("attr.") and name not in FIELDS:
        raise CitesmailError(f"unknown field '{name}' in '{text}'", known_names(
            "field", name, FIELDS, ", and attr.NAME for an imported column"))
    if name == "attr.":
        raise CitesmailError(f"no attribute name in '{text}'", "write attr.NAME=value")
    if name == "domain":
        try:
            value = normalize_domain(value)
        except AddressError as exc:
            raise CitesmailError(f"invalid domain in '{text}': {exc}") from None
    return Condition(name, operator == "!=", value)


@dataclass
class Definition:
    lists: list[str] = field(default_factory=list)
    exclude_lists: list[str] = field(default_factory=list)
    where: list[Condition] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"lists": self.lists, "exclude_lists": self.exclude_lists,
                "where": [str(c) for c in self.where]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Definition:
        return cls(list(data.get("lists", [])), list(data.get("exclude_lists", [])),
                   [parse_condition(text) for text in data.get("where", [])])

    def describe(self) -> str:
        parts = []
        if self.lists:
            parts.append("on " + " or ".join(self.lists))
        if self.exclude_lists:
            parts.append("not on " + " or ".join(self.exclude_lists))
        parts += [str(c) for c in self.where]
        return ", ".join(parts) or "every active contact"


def _column(name: str) -> ColumnElement[Any]:
    column: ColumnElement[Any]
    if name.startswith("attr."):
        column = Contact.attributes[name[len("attr."):]].as_string()
    else:
        column = getattr(Contact, name)
    return column


def _list_ids(session: Session, names: list[str]) -> list[int]:
    return [get_list(session, name).id for name in names]


def matching(session: Session, definition: Definition) -> ColumnElement[bool]:
    """The SQL condition a contact meets to be in the segment."""
    return and_(Contact.status == ContactStatus.ACTIVE, _chosen(session, definition))


def left_out(session: Session, definition: Definition) -> dict[str, int]:
    """Contacts the segment's lists and conditions choose that are not active, by
    status (the most first)."""
    query = (select(Contact.status, func.count())
             .where(Contact.status != ContactStatus.ACTIVE, _chosen(session, definition))
             .group_by(Contact.status).order_by(func.count().desc(), Contact.status))
    return {status: n for status, n in session.execute(query)}


def _chosen(session: Session, definition: Definition) -> ColumnElement[bool]:
    """The segment's lists and conditions, whatever the contact's status."""
    clauses: list[ColumnElement[bool]] = []
    if definition.lists:
        clauses.append(exists().where(Membership.contact_id == Contact.id,
                                      Membership.list_id.in_(_list_ids(session,
                                                                       definition.lists))))
    if definition.exclude_lists:
        ids = _list_ids(session, definition.exclude_lists)
        clauses.append(~exists().where(Membership.contact_id == Contact.id,
                                       Membership.list_id.in_(ids)))
    groups: dict[tuple[str, bool], list[str]] = defaultdict(list)
    for condition in definition.where:
        groups[(condition.field, condition.negated)].append(condition.value)
    for (name, negated), values in groups.items():
        column = _column(name)
        if negated:
            clauses.append(or_(column.is_(None), column.not_in(values)))
        else:
            clauses.append(column.in_(values))
    return and_(true(), *clauses)


def count(session: Session, definition: Definition) -> int:
    query = select(func.count()).select_from(Contact).where(matching(session, definition))
    return session.scalar(query) or 0


def stream(session: Session, definition: Definition | None, *,
           columns: tuple[Any, ...] = (), extra: ColumnElement[bool] | None = None,
           batch: int = 1000) -> Iterator[list[Any]]:
    """Matching contacts (every contact when `definition` is None) in batches, in id
    order: keyset pagination, never OFFSET, never all contacts in memory."""
    conditions = [] if definition is None else [matching(session, definition)]
    if extra is not None:
        conditions.append(extra)
    wanted = columns or (Contact,)
    last = 0
    while True:
        query: Select[Any] = (select(Contact.id, *wanted).where(*conditions, Contact.id > last)
                              .order_by(Contact.id).limit(batch))
        rows = session.execute(query).all()
        if not rows:
            return
        last = rows[-1][0]
        yield [row[1:] if len(wanted) > 1 else row[1] for row in rows]


def get_segment(session: Session, name: str) -> tuple[Segment, Definition]:
    found = session.scalar(select(Segment).where(Segment.name == name))
    if found is None:
        known = list(session.scalars(select(Segment.name).order_by(Segment.name)))
        raise unknown_name("segment", name, known, f"citesmail segments add {name} --list ...")
    return found, Definition.from_json(found.definition)


def add_segment(session: Session, name: str, definition: Definition) -> None:
    check_name(name, "segment")
    if session.scalar(select(Segment.id).where(Segment.name == name)) is not None:
        raise CitesmailError(f"segment '{name}' already exists",
                             f"remove it first: citesmail segments remove {name}")
    _list_ids(session, definition.lists + definition.exclude_lists)  # unknown lists fail
    session.add(Segment(name=name, definition=definition.to_json()))


def remove_segment(session: Session, name: str) -> None:
    segment, _ = get_segment(session, name)
    session.delete(segment)


def all_segments(session: Session) -> list[tuple[str, Definition]]:
    return [(s.name, Definition.from_json(s.definition))
            for s in session.scalars(select(Segment).order_by(Segment.name))]
