"""Housekeeping: remove idempotency keys past their TTL and live events past their retention.

One pass runs alone across every process sharing the database (core.db.run_alone) and deletes
in batches of `DOVECOTE_HOUSEKEEPING_BATCH_SIZE` rows, each its own short transaction, so a
large backlog never holds the write lock (SQLite's single writer) for long. `dovecote serve`
runs a pass every `DOVECOTE_HOUSEKEEPING_INTERVAL_SECONDS`; `dovecote housekeeping` runs one.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from dovecote.core import clock
from dovecote.core.db import Database, Turn, run_alone, standalone_unit
from dovecote.core.settings import Settings
from dovecote.housekeeping import repository as repo
from dovecote.idempotency import service as idempotency

log = logging.getLogger("dovecote")

JOB = "housekeeping"
LEASE_SECONDS = 300.0  # SQLite: how long a silent runner keeps others out
FIRST_RUN_AFTER_SECONDS = 600.0  # the first pass after start (then every interval)


@dataclass(frozen=True)
class Removed:
    idempotency_keys: int
    events: int


Batch = Callable[[AsyncSession], Awaitable[int]]


async def _in_batches(database: Database, turn: Turn, batch: Batch, size: int) -> int:
    """Run `batch` (which deletes at most `size` rows) until it deletes fewer; each batch is
    one unit of work, committed before the next starts."""
    total = 0
    while await turn.keep():
        async with standalone_unit(database) as uow:
            removed = await batch(uow.session)
        total += removed
        if removed < size:
            break
        await asyncio.sleep(0)  # let waiting writers in between batches
    return total


async def run_once(database: Database, settings: Settings) -> Removed | None:
    """One pass; None when another process is running one right now."""
    size = settings.housekeeping_batch_size
    key_ttl = timedelta(seconds=settings.idempotency_ttl_seconds)
    events_cutoff = clock.now() - timedelta(seconds=settings.events_retention_seconds)

    async def keys(session: AsyncSession) -> int:
        return await idempotency.purge_expired(session, key_ttl, size)

    async def events(session: AsyncSession) -> int:
        return await repo.prune_events_before(session, events_cutoff, size)

    async with run_alone(database, JOB, LEASE_SECONDS) as turn:
        if turn is None:
            return None
        return Removed(
            idempotency_keys=await _in_batches(database, turn, keys, size),
            events=await _in_batches(database, turn, events, size),
        )


async def run_forever(database: Database, settings: Settings) -> None:
    interval = settings.housekeeping_interval_seconds
    delay = min(interval, FIRST_RUN_AFTER_SECONDS)
    while True:
        await asyncio.sleep(delay * random.uniform(0.8, 1.0))  # processes do not start in step
        delay = interval
        try:
            removed = await run_once(database, settings)
        except Exception:
            log.warning("housekeeping failed; trying again later", exc_info=True)
            continue
        if removed is None:
            log.info("housekeeping: another process is running it")
        elif removed.idempotency_keys or removed.events:
            log.info(
                "housekeeping removed %d idempotency keys and %d events",
                removed.idempotency_keys,
                removed.events,
            )


def start(database: Database, settings: Settings) -> asyncio.Task[None] | None:
    if settings.housekeeping_interval_seconds <= 0:
        return None
    return asyncio.create_task(run_forever(database, settings), name="dovecote-housekeeping")
