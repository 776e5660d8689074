"""Consent on contacts, saved segments, and the suppression list of erased addresses.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from citesmail.db import UTCDateTime

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("consent_source", sa.String(255)))
        batch.add_column(sa.Column("consent_at", UTCDateTime))
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "suppressions",
        sa.Column("address_hash", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(50), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
    op.drop_table("segments")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("consent_at")
        batch.drop_column("consent_source")
