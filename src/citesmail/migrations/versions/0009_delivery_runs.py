"""Each row being sent names the run that holds it: on PostgreSQL several runs drain
one send, and a dead run's rows are settled from its own journal while the others go on.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


# Plain ALTER TABLE ADD COLUMN, never a batch (see 0006).
def upgrade() -> None:
    op.add_column("deliveries", sa.Column("run_id", sa.String(32)))


def downgrade() -> None:
    op.drop_column("deliveries", "run_id")
