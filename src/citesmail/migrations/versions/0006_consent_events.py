"""Consent history (consent_events, consent_texts), public lists; the consent columns of
contacts become each contact's first event.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from citesmail.db import UTCDateTime

revision = "0006"
down_revision = "0005"

# What imports wrote into contacts.consent_source: "import:FILE" (the line was not kept).
_PREFIX = "import:"


# Plain ALTER TABLE, never a batch: SQLite would copy the table, and dropping the old
# one (foreign keys on) would delete every membership and consent event with it.
# DROP COLUMN needs SQLite 3.35, which RETURNING (audience/status.py) needs too.


def upgrade() -> None:
    op.add_column("lists", sa.Column("public", sa.Boolean, nullable=False,
                                     server_default=sa.false()))
    op.create_table(
        "consent_texts",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("contact_id", sa.Integer,
                  sa.ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("list_id", sa.Integer, sa.ForeignKey("lists.id", ondelete="SET NULL")),
        sa.Column("list_name", sa.String(100)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("consent_text_hash", sa.String(64), sa.ForeignKey("consent_texts.hash")),
    )
    op.create_index("ix_consent_events_contact", "consent_events", ["contact_id", "at"])
    # The consent an import noted on each contact, as its first event (no text: none
    # was kept then).
    source = sa.case((sa.column("consent_source").like(f"{_PREFIX}%"),
                      sa.func.substr(sa.column("consent_source"), len(_PREFIX) + 1)),
                     else_=sa.column("consent_source"))
    contacts = sa.table("contacts", sa.column("id"), sa.column("consent_source"),
                        sa.column("consent_at"))
    events = sa.table("consent_events", sa.column("contact_id"), sa.column("kind"),
                      sa.column("source"), sa.column("at"))
    op.get_bind().execute(events.insert().from_select(
        ["contact_id", "kind", "source", "at"],
        sa.select(contacts.c.id, sa.literal("import"), sa.func.coalesce(source, ""),
                  contacts.c.consent_at).where(contacts.c.consent_at.is_not(None))))
    op.drop_column("contacts", "consent_source")
    op.drop_column("contacts", "consent_at")


def downgrade() -> None:
    op.add_column("contacts", sa.Column("consent_source", sa.String(255)))
    op.add_column("contacts", sa.Column("consent_at", UTCDateTime))
    bind = op.get_bind()
    first = bind.execute(sa.text(
        "SELECT contact_id, source, at FROM consent_events e WHERE kind = 'import' AND id = "
        "(SELECT MIN(id) FROM consent_events f WHERE f.contact_id = e.contact_id "
        "AND f.kind = 'import')")).all()
    if first:
        bind.execute(sa.text("UPDATE contacts SET consent_source = :source, consent_at = :at "
                             "WHERE id = :contact_id"),
                     [{"contact_id": c, "source": f"{_PREFIX}{s.rsplit(':', 1)[0]}"[:255],
                       "at": at} for c, s, at in first])
    op.drop_index("ix_consent_events_contact", "consent_events")
    op.drop_table("consent_events")
    op.drop_table("consent_texts")
    op.drop_column("lists", "public")
