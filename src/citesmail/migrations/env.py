"""Alembic environment: citesmail passes an open connection; nothing is read from files."""

from __future__ import annotations

from alembic import context

from citesmail.db import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # APScheduler creates and owns its job table: not ours to migrate.
    include_name=lambda name, kind, _parent: not (kind == "table" and name == "apscheduler_jobs"),
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
