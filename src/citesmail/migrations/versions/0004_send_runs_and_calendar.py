"""Sends remember which run holds them (for its journal) and their calendar invitation.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("sends") as batch:
        batch.add_column(sa.Column("run_id", sa.String(32)))
        batch.add_column(sa.Column("calendar", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("sends") as batch:
        batch.drop_column("calendar")
        batch.drop_column("run_id")
