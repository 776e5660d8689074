"""The send log: one send per campaign, one delivery row per recipient.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from citesmail.db import UTCDateTime

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "sends",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign", sa.String(100), nullable=False, unique=True),
        sa.Column("segment", sa.String(100)),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("html", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("slots", sa.JSON, nullable=False),
        sa.Column("source_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("scheduled_at", UTCDateTime),
        sa.Column("started_at", UTCDateTime),
        sa.Column("finished_at", UTCDateTime),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("contact_id", sa.Integer,
                  sa.ForeignKey("contacts.id", ondelete="SET NULL")),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("first_name", sa.String(255), nullable=False),
        sa.Column("last_name", sa.String(255), nullable=False),
        sa.Column("organization", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime),
        sa.Column("last_code", sa.Integer),
        sa.Column("last_error", sa.String(1000)),
        sa.Column("updated_at", UTCDateTime),
        sa.Column("sent_at", UTCDateTime),
        sa.UniqueConstraint("send_id", "contact_id"),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["send_id", "state", "next_attempt_at"])
    op.create_index("ix_deliveries_queue", "deliveries", ["send_id", "state", "id"])
    op.create_index("ix_deliveries_sent_at", "deliveries", ["sent_at"])
    op.create_index("ix_deliveries_contact", "deliveries", ["contact_id"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("sends")
