"""The stream a studio page follows while a send runs: every second the server reads
the running sends' counts (one small query per running send) and sends the stages that
changed, in words, as one server-sent event."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

from starlette.concurrency import run_in_threadpool

from ..config import Settings
from ..db import open_database
from .stages import SendWatch, Stage

POLL_SECONDS = 1.0
# A comment now and then keeps the connection open through idle minutes.
KEEPALIVE_POLLS = 15


async def send_changes(settings: Settings, database_url: str | None,
                       words: Callable[[dict[str, Stage]], dict[str, str]],
                       poll: float = POLL_SECONDS) -> AsyncIterator[str]:
    yield ": connected\n\n"
    if database_url is None:  # nothing can be sent from a workspace without a database
        while True:
            await asyncio.sleep(poll * KEEPALIVE_POLLS)
            yield ": no database\n\n"
    db = await run_in_threadpool(open_database, database_url)
    watch = SendWatch(db, settings.tz)
    try:
        quiet = 0
        while True:
            changed = await run_in_threadpool(watch.changes)
            if changed:
                quiet = 0
                yield f"data: {json.dumps(words(changed), ensure_ascii=False)}\n\n"
            else:
                quiet += 1
                if quiet % KEEPALIVE_POLLS == 0:
                    yield ": still here\n\n"
            await asyncio.sleep(poll)
    finally:
        db.close()
