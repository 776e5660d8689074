"""Measuring what happened after a send: counted links, clicks (per hour, and per
consenting contact), opens, web-view visits, consent to measurement, and the campaign
that led to a consent event.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from citesmail.db import UTCDateTime

revision = "0008"
down_revision = "0007"


# Plain ALTER TABLE ADD COLUMN, never a batch (see 0006).
def upgrade() -> None:
    op.add_column("contacts", sa.Column("measurement_consent", sa.Boolean, nullable=False,
                                        server_default=sa.false()))
    op.add_column("consent_events", sa.Column("campaign", sa.String(100)))
    op.add_column("sends", sa.Column("clicks", sa.String(16)))
    op.add_column("sends", sa.Column("opens", sa.String(16)))
    op.create_index("ix_consent_events_campaign", "consent_events", ["campaign"])
    op.create_table(
        "tracked_links",
        sa.Column("campaign", sa.String(100), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
    )
    op.create_table(
        "click_counts",
        sa.Column("campaign", sa.String(100), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("hour", UTCDateTime, primary_key=True),
        sa.Column("clicks", sa.Integer, nullable=False),
        sa.Column("automated", sa.Integer, nullable=False),
    )
    op.create_table(
        "click_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("contact_id", sa.Integer,
                  sa.ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("automated", sa.Boolean, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_click_events_campaign", "click_events", ["campaign", "number"])
    op.create_index("ix_click_events_at", "click_events", ["at"])
    op.create_table(
        "open_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("contact_id", sa.Integer,
                  sa.ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_open_events_campaign", "open_events", ["campaign", "contact_id"])
    op.create_index("ix_open_events_at", "open_events", ["at"])
    op.create_table(
        "web_view_counts",
        sa.Column("campaign", sa.String(100), primary_key=True),
        sa.Column("hour", UTCDateTime, primary_key=True),
        sa.Column("views", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("web_view_counts")
    op.drop_index("ix_open_events_at", "open_events")
    op.drop_index("ix_open_events_campaign", "open_events")
    op.drop_table("open_events")
    op.drop_index("ix_click_events_at", "click_events")
    op.drop_index("ix_click_events_campaign", "click_events")
    op.drop_table("click_events")
    op.drop_table("click_counts")
    op.drop_table("tracked_links")
    op.drop_index("ix_consent_events_campaign", "consent_events")
    op.drop_column("sends", "opens")
    op.drop_column("sends", "clicks")
    op.drop_column("consent_events", "campaign")
    op.drop_column("contacts", "measurement_consent")
