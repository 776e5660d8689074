"""Delivery: the send log, the runs that drain it, and the way mail goes out and comes
back. Nothing else reaches the `sends` and `deliveries` tables.

One `deliveries` row per (send, contact), snapshotted when the send starts. States
(states.DeliveryState): queued -> sending -> sent; deferred (4xx: retried later), failed
(5xx or retries used up), skipped (unsubscribed or erased meanwhile), unknown (it was
`sending` when the process died: the server may have it; not resent unless asked).

- sendlog.py: a send's life (stored, scheduled, started, resumed) and what commands ask.
- store.py: the SQL of a run (claim, record, settle, hourly cap, fence): `Store`.
- run.py: the threads of a run, its pace, its stop; journal.py: its journal on disk.
- transports.py: SMTP or the outbox folder. locks.py: one process per send or worker.
- runs.py: on PostgreSQL, the runs that drain one send together, told apart by locks.
- lookup.py: what a link names (the person, their row, the stored message), for `serve`.
- bounces.py: what comes back (delivery status notifications).
"""

from .run import RunResult, SendPaused, SendRun
from .sendlog import (
    DryRun,
    Prepared,
    SendInfo,
    StoredCampaign,
    audience_of,
    counts,
    dry_run,
    file_hash,
    find_send,
    list_sends,
    prepare_send,
    requeue_unknown,
    send_counts,
    send_tests,
    start_scheduled,
    summary,
)
from .store import Claimed, SendBusy, SqlStore, Store

__all__ = [
    "Claimed", "DryRun", "Prepared", "RunResult", "SendBusy", "SendInfo", "SendPaused", "SendRun",
    "SqlStore", "Store", "StoredCampaign", "audience_of", "counts", "dry_run", "file_hash",
    "find_send", "list_sends", "prepare_send", "requeue_unknown", "send_counts", "send_tests",
    "start_scheduled", "summary",
]
