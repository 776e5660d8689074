"""Segments: saved filters over contacts, evaluated in SQL and streamed by id.

A segment is lists (any of), excluded lists, and conditions on a field (`role`,
`territory`, `organization`, `lang`, `domain`, `attr.NAME`): `field=value` ignores case
and accents, `field==value` is exact, `field!=value` and `field!==value` are their
negations (and hold for contacts without a value). A field repeated is any of its
values (none of them, negated); different fields must all hold. Only active contacts
ever match.
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
from ..folding import fold
from ..states import ContactStatus
from .addresses import AddressError, normalize_domain
from .lists import check_name, get_list

FIELDS = ("role", "territory", "organization", "lang", "domain")
_CONDITION = re.compile(r"^\s*(attr\.[^=!]+|[A-Za-z_]+)\s*(!==|!=|==|=)\s*(.*?)\s*$", re.S)


@dataclass(frozen=True)
class Condition:
    field: str  # a name of FIELDS, or attr.NAME
    negated: bool
    value: str
    exact: bool = False  # == and !==: case and accents count

    def __str__(self) -> str:
        return f"{self.field}{'!' if self.negated else ''}={'=' if self.exact else ''}{self.value}"


def parse_condition(text: str) -> Condition:
    match = _CONDITION.match(text)
    if not match:
        raise CitesmailError(f"cannot read condition '{text}'",
                             "write field=value (case and accents ignored), field==value "
                             "(exact), field!=value or field!==value, e.g. territory=Lyon")
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
    return Condition(name, operator.startswith("!"), value, operator.endswith("=="))


@dataclass(frozen=True)
class AnyOf:
    """Conditions on any fields of which a contact meets at least one: `a=x | b=y`."""

    conditions: tuple[Condition, ...]

    def __str__(self) -> str:
        return " | ".join(str(c) for c in self.conditions)


# A `|` starts another condition only when a field and its operator follow it; else it
# is part of a value ("organization=A|B").
_ALTERNATIVE = re.compile(r"\s*\|\s*(?=(?:attr\.[^=!|]+|[A-Za-z_]+)\s*!?==?)")


def parse_where(text: str) -> Condition | AnyOf:
    """A --where: one condition, or alternatives across fields split by `|`."""
    parts = _ALTERNATIVE.split(text)
    if len(parts) == 1:
        return parse_condition(text)
    return AnyOf(tuple(parse_condition(part) for part in parts))


@dataclass
class Definition:
    lists: list[str] = field(default_factory=list)
    exclude_lists: list[str] = field(default_factory=list)
    where: list[Condition | AnyOf] = field(default_factory=list)
    title: str = ""  # what people call it: "Délégués du préfet, Lyon et Grenoble"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"lists": self.lists, "exclude_lists": self.exclude_lists,
                                "where": [str(c) for c in self.where]}
        if self.title:
            data["title"] = self.title
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Definition:
        return cls(list(data.get("lists", [])), list(data.get("exclude_lists", [])),
                   [parse_where(text) for text in data.get("where", [])],
                   str(data.get("title", "")))

    def describe(self) -> str:
        parts = []
        if self.lists:
            parts.append("on " + " or ".join(self.lists))
        if self.exclude_lists:
            parts.append("not on " + " or ".join(self.exclude_lists))
        parts += [str(c) for c in self.where]
        return ", ".join(parts) or "every active contact"


# domain is stored folded already: lower-case ASCII (IDNA), as conditions normalise it.
_FOLDED: dict[str, Any] = {
    "role": Contact.role_key, "territory": Contact.territory_key,
    "organization": Contact.organization_key, "domain": Contact.domain}


def _columns(name: str) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """The column a field is compared on exactly, and the one compared folded."""
    if name.startswith("attr."):
        attribute = name[len("attr."):]
        return (Contact.attributes[attribute].as_string(),
                Contact.attributes_key[attribute].as_string())
    column: ColumnElement[Any] = getattr(Contact, name)
    if name in _FOLDED:
        return column, _FOLDED[name]
    return column, func.lower(column)  # lang: a language code


def _list_ids(session: Session, names: list[str]) -> list[int]:
    return [get_list(session, name).id for name in names]


def _any_of(conditions: list[Condition]) -> ColumnElement[bool]:
    """A contact's value is one of the conditions' values (folded or exact as each asks)."""
    exact_column, folded_column = _columns(conditions[0].field)
    exact = [c.value for c in conditions if c.exact]
    folded = [fold(c.value) for c in conditions if not c.exact]
    # An exact value is also its folded value: that part lets the index serve `==` too.
    return or_(*([and_(folded_column.in_([fold(v) for v in exact]), exact_column.in_(exact))]
                 if exact else []),
               *([folded_column.in_(folded)] if folded else []))


def _one(conditions: list[Condition]) -> ColumnElement[bool]:
    """Conditions on one field with the same sense: any of the values (or none of them)."""
    if conditions[0].negated:
        return or_(_columns(conditions[0].field)[0].is_(None), ~_any_of(conditions))
    return _any_of(conditions)


def _condition_steps(definition: Definition) -> list[tuple[str, ColumnElement[bool]]]:
    groups: dict[tuple[str, bool], list[Condition]] = defaultdict(list)
    alternatives = []
    for item in definition.where:
        if isinstance(item, AnyOf):
            alternatives.append((str(item), or_(*(_one([c]) for c in item.conditions))))
        else:
            groups[(item.field, item.negated)].append(item)
    found = [(" or ".join(str(c) for c in conditions), _one(conditions))
             for conditions in groups.values()]
    return found + alternatives


def _steps(session: Session, definition: Definition) -> list[tuple[str, ColumnElement[bool]]]:
    """The segment's parts in the order they narrow it down, each with its label."""
    return [("active contacts", Contact.status == ContactStatus.ACTIVE),
            *_chosen_steps(session, definition)]


def _chosen_steps(session: Session,
                  definition: Definition) -> list[tuple[str, ColumnElement[bool]]]:
    """The segment's lists and conditions, whatever the contact's status."""
    found: list[tuple[str, ColumnElement[bool]]] = []
    if definition.lists:
        ids = _list_ids(session, definition.lists)
        found.append(("on " + " or ".join(definition.lists),
                      exists().where(Membership.contact_id == Contact.id,
                                     Membership.list_id.in_(ids))))
    if definition.exclude_lists:
        ids = _list_ids(session, definition.exclude_lists)
        found.append(("not on " + " or ".join(definition.exclude_lists),
                      ~exists().where(Membership.contact_id == Contact.id,
                                      Membership.list_id.in_(ids))))
    return found + _condition_steps(definition)


def matching(session: Session, definition: Definition) -> ColumnElement[bool]:
    """The SQL condition a contact meets to be in the segment."""
    return and_(*(clause for _, clause in _steps(session, definition)))


def left_out(session: Session, definition: Definition) -> dict[str, int]:
    """Contacts the segment's lists and conditions choose that are not active, by
    status (the most first)."""
    query = (select(Contact.status, func.count())
             .where(Contact.status != ContactStatus.ACTIVE, _chosen(session, definition))
             .group_by(Contact.status).order_by(func.count().desc(), Contact.status))
    return {status: n for status, n in session.execute(query)}


def _chosen(session: Session, definition: Definition) -> ColumnElement[bool]:
    return and_(true(), *(clause for _, clause in _chosen_steps(session, definition)))


def steps(session: Session, definition: Definition) -> list[tuple[str, int]]:
    """How many contacts are left after each part of the segment, in order: the first
    count of 0 names the part that removed everyone."""
    parts = _steps(session, definition)
    return [(label, _count(session, and_(*(clause for _, clause in parts[:upto]))))
            for upto, (label, _) in enumerate(parts, start=1)]


def _count(session: Session, condition: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count()).select_from(Contact).where(condition)) or 0


def count(session: Session, definition: Definition) -> int:
    return _count(session, matching(session, definition))


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
                             f"change it with citesmail segments edit {name} (or remove it "
                             f"first: citesmail segments remove {name})")
    _list_ids(session, definition.lists + definition.exclude_lists)  # unknown lists fail
    session.add(Segment(name=name, definition=definition.to_json()))


def edit_segment(session: Session, name: str, lists: list[str] | None = None,
                 exclude_lists: list[str] | None = None,
                 where: list[Condition | AnyOf] | None = None,
                 title: str | None = None) -> Definition:
    """Replace the parts given of a saved segment; the others stay. Sends already
    started keep their recipients; a scheduled send takes the segment at its time."""
    segment, current = get_segment(session, name)
    changed = Definition(current.lists if lists is None else lists,
                         current.exclude_lists if exclude_lists is None else exclude_lists,
                         current.where if where is None else where,
                         current.title if title is None else title)
    _list_ids(session, changed.lists + changed.exclude_lists)  # unknown lists fail
    segment.definition = changed.to_json()
    return changed


def remove_segment(session: Session, name: str) -> None:
    segment, _ = get_segment(session, name)
    session.delete(segment)


def all_segments(session: Session) -> list[tuple[str, Definition]]:
    return [(s.name, Definition.from_json(s.definition))
            for s in session.scalars(select(Segment).order_by(Segment.name))]
