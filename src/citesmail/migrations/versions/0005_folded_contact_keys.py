"""Folded copies of the fields segments and search compare (case and accents ignored),
filled for every stored contact; saved segments keep the exact matching they had.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from citesmail.folding import contact_keys

revision = "0005"
down_revision = "0004"

KEYED = ("role", "territory", "organization")
_VALUES = ("email", "first_name", "last_name", "organization", "role", "territory")
_KEYS = ("role_key", "territory_key", "organization_key", "search_key")
contacts = sa.table("contacts", sa.column("id", sa.Integer),
                    *(sa.column(name, sa.Text) for name in (*_VALUES, *_KEYS)),
                    sa.column("attributes", sa.JSON), sa.column("attributes_key", sa.JSON))
segments = sa.table("segments", sa.column("id", sa.Integer), sa.column("definition", sa.JSON))


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        for name in KEYED:
            batch.add_column(sa.Column(f"{name}_key", sa.Text))
        batch.add_column(sa.Column("attributes_key", sa.JSON))
        batch.add_column(sa.Column("search_key", sa.Text))
        for name in KEYED:
            batch.drop_index(f"ix_contacts_{name}")
            batch.create_index(f"ix_contacts_{name}_key", [f"{name}_key"])
    _fill_keys(op.get_bind())
    # `=` and `!=` compared exactly before; a saved segment keeps reaching the same people.
    _rewrite_conditions(op.get_bind(), lambda condition: condition.replace("=", "==", 1))


def downgrade() -> None:
    _rewrite_conditions(op.get_bind(), _exact_as_before)
    with op.batch_alter_table("contacts") as batch:
        for name in KEYED:
            batch.drop_index(f"ix_contacts_{name}_key")
            batch.create_index(f"ix_contacts_{name}", [name])
            batch.drop_column(f"{name}_key")
        batch.drop_column("attributes_key")
        batch.drop_column("search_key")


def _exact_as_before(condition: str) -> str:
    """`==` and `!==` back to the `=` and `!=` that were exact (a folded `=` stays `=`)."""
    at = condition.index("=")
    return condition[:at] + condition[at + 1:] if condition[at + 1:at + 2] == "=" else condition


def _fill_keys(bind: sa.Connection, batch: int = 5000) -> None:
    """Every contact's folded columns, by id in batches (never all rows in memory)."""
    columns = [contacts.c[name] for name in ("id", *_VALUES, "attributes")]
    statement = (sa.update(contacts).where(contacts.c.id == sa.bindparam("contact_id"))
                 .values({name: sa.bindparam(name) for name in (*_KEYS, "attributes_key")}))
    last = 0
    while rows := bind.execute(sa.select(*columns).where(contacts.c.id > last)
                               .order_by(contacts.c.id).limit(batch)).mappings().all():
        bind.execute(statement, [{"contact_id": row["id"], **contact_keys(row)}
                                 for row in rows])
        last = rows[-1]["id"]


def _rewrite_conditions(bind: sa.Connection, change: Callable[[str], str]) -> None:
    for segment_id, definition in bind.execute(sa.select(segments.c.id,
                                                         segments.c.definition)).all():
        where = [change(condition) for condition in definition.get("where", [])]
        bind.execute(sa.update(segments).where(segments.c.id == segment_id)
                     .values(definition={**definition, "where": where}))
