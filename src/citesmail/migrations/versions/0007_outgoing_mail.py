"""The queue of messages that are not a campaign's: sign-up confirmations.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from citesmail.db import UTCDateTime

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "outgoing_mail",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("contact_id", sa.Integer,
                  sa.ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("lists", sa.JSON, nullable=False),
        sa.Column("lang", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("last_error", sa.String(1000)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime),
    )
    op.create_index("ix_outgoing_mail_due", "outgoing_mail", ["state", "next_attempt_at"])
    op.create_index("ix_outgoing_mail_contact", "outgoing_mail", ["contact_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_outgoing_mail_contact", "outgoing_mail")
    op.drop_index("ix_outgoing_mail_due", "outgoing_mail")
    op.drop_table("outgoing_mail")
