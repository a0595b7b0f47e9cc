"""Database pool use as gauges: connections checked out and the most a pool may hold.

SQLAlchemy's pools report every checkout and checkin as events, so their gauge is exact at any
moment. The asyncpg pool of the self-committing statements (core.db, PostgreSQL only) has no
such events: it is sampled every `SAMPLE_SECONDS` and whenever this process answers /metrics.
Gauges move by differences, so several apps in one process (tests) add up instead of
overwriting each other.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

from sqlalchemy import event
from sqlalchemy.pool import Pool

from dovecote.core.db import Database
from dovecote.observability.metrics import instruments

log = logging.getLogger("dovecote")

SAMPLE_SECONDS = 2.0
_watchers: set[PoolWatcher] = set()


def _capacity(pool: Pool) -> int:
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", 0)
    return int(size()) + max(0, int(overflow)) if callable(size) else 1


class PoolWatcher:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.sampled = (0, 0)  # what the statements pool last added: (checked out, size)
        self.sizes: list[tuple[str, int]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def pools(self) -> list[tuple[str, Pool]]:
        engines = self.database.engines
        if len(engines) == 1:
            return [("main", engines[0].sync_engine.pool)]
        return [("writer", engines[0].sync_engine.pool), ("reader", engines[1].sync_engine.pool)]

    def start(self) -> None:
        gauges = instruments()
        for name, pool in self.pools:
            checked_out = gauges.pool_checked_out.labels(name)

            def checkout(*_: Any, gauge: Any = checked_out) -> None:
                gauge.inc()

            def checkin(*_: Any, gauge: Any = checked_out) -> None:
                gauge.dec()

            event.listen(pool, "checkout", checkout)
            event.listen(pool, "checkin", checkin)
            self.sizes.append((name, _capacity(pool)))
            gauges.pool_size.labels(name).inc(self.sizes[-1][1])
        if self.database.dialect == "postgresql":
            self._task = asyncio.create_task(self._sample_forever())
        _watchers.add(self)

    async def stop(self) -> None:
        _watchers.discard(self)
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        gauges = instruments()
        for name, size in self.sizes:
            gauges.pool_size.labels(name).dec(size)
        self._move(0, 0)

    def sample(self) -> None:
        # Opened by core.db on first use; no public name for it there yet.
        pool = getattr(self.database, "_statements", None)
        if pool is None:
            return self._move(0, 0)
        size = pool.get_max_size()
        return self._move(pool.get_size() - pool.get_idle_size(), size)

    def _move(self, checked_out: int, size: int) -> None:
        gauges = instruments()
        before_out, before_size = self.sampled
        if checked_out != before_out:
            gauges.pool_checked_out.labels("statements").inc(checked_out - before_out)
        if size != before_size:
            gauges.pool_size.labels("statements").inc(size - before_size)
        self.sampled = (checked_out, size)

    async def _sample_forever(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:  # a gauge is never worth a crash
                log.warning("sampling the statement pool failed", exc_info=True)
            await asyncio.sleep(SAMPLE_SECONDS)


def sample_all() -> None:
    """Bring this process's sampled gauges up to date (before answering /metrics)."""
    for watcher in list(_watchers):
        watcher.sample()
