"""The runs of sends on PostgreSQL, told apart by advisory locks.

Each run holds, on its lock's session, an advisory lock named after the run (the pair
`(space, hashtext(run id))`, the space naming the database and schema). So any process
can tell, in its own transaction: whether a run is still alive (its lock is held),
how many runs are (the rate is shared among them), and whether a run still holds its own
lock (the fence: a run whose session was cut stops before its next claim). A lock dies
with its session: with its process at once, with its machine or network when the
server's TCP keepalives give up.

Two run ids whose hashes collide would only make a dead run look alive, and its rows
wait for the other run to end: never the other way round.
"""

from __future__ import annotations

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

_SPACE = "hashtext('citesmail:runs:' || current_database() || ':' || current_schema())"
_CAP = "hashtext('citesmail:cap:' || current_database() || ':' || current_schema())"
_HELD = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 "
         f"AND granted AND classid = {_SPACE}::oid")


def hold(connection: Connection, run_id: str) -> int:
    """Take the run's lock on the lock's session; returns that session's server process."""
    connection.execute(text(f"SELECT pg_advisory_lock({_SPACE}, hashtext(:run))"),
                       {"run": run_id})
    pid: int = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return pid


def holds(session: Session, run_id: str, pid: int) -> bool:
    """Whether the session `pid` still holds the run's lock (asked at every step of a
    run: in the driver's words, as the send log's other statements of a step)."""
    found = session.connection().exec_driver_sql(
        f"{_HELD} AND objid = hashtext(%s)::oid AND pid = %s", (run_id, pid)).scalar()
    return bool(found)


def live(session: Session) -> int:
    """How many runs of sends are going on now (this one included)."""
    return max(1, session.execute(text(_HELD)).scalar() or 0)


def dead(session: Session, run_ids: list[str]) -> list[str]:
    """The runs among `run_ids` that are gone. Their locks are taken until the end of the
    transaction: a run cannot be thought dead and come back while its rows are settled."""
    return [run for run in run_ids if session.execute(
        text(f"SELECT pg_try_advisory_xact_lock({_SPACE}, hashtext(:run))"),
        {"run": run}).scalar()]


def serialize_cap(session: Session) -> None:
    """One claim at a time in the whole database until this transaction ends: the hourly
    cap is then counted exactly across processes."""
    session.execute(text(f"SELECT pg_advisory_xact_lock({_CAP})"))
