"""Rate limits per user and per IP, in the `limits` library's notation (e.g. "5/second;200/minute").

Counters live in Redis when DOVECOTE_REDIS_URL is set (shared by every server process) and in
process memory otherwise. If Redis is unreachable the limiter fails open and logs: an outage of
the limiter must not become an outage of messaging.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from dovecote.core.errors import RateLimited
from dovecote.core.settings import LIMITED, Settings
from dovecote.core.state import app_state

log = logging.getLogger("dovecote")


class RateLimiter:
    def __init__(
        self, settings: Settings, on_refused: Callable[[str], None] = lambda _limit: None
    ) -> None:
        self.enabled = settings.ratelimit_enabled
        self.on_refused = on_refused  # told the limit's name ("send:user") on every refusal
        self.storage: Storage = (
            RedisStorage(
                settings.redis_url.replace("redis://", "async+redis://", 1),
                implementation="redispy",
                key_prefix=f"{settings.redis_prefix}:limits",
                socket_timeout=0.5,
                socket_connect_timeout=0.5,
            )
            if settings.redis_url
            else MemoryStorage()
        )
        self.strategy = MovingWindowRateLimiter(self.storage)
        self.rules: dict[str, list[RateLimitItem]] = {}
        for category in LIMITED:
            self.rules[f"{category}:user"] = parse_many(getattr(settings, f"ratelimit_{category}"))
            self.rules[f"{category}:ip"] = parse_many(getattr(settings, f"ratelimit_{category}_ip"))

    async def check(self, category: str, *, user: int | str | None, ip: str | None) -> None:
        """Count one hit for the user and the IP; RateLimited when either is over its limit."""
        for item, keys in self._rules(category, user, ip):
            await self._guarded(item, keys, self._hit)

    @asynccontextmanager
    async def counting_accepted(
        self, category: str, *, user: int | str | None, ip: str | None
    ) -> AsyncIterator[None]:
        """Refuse (RateLimited) when the user or the IP has no room left, then count the
        request only if the block completes: a refused request (a 4xx) costs nothing."""
        rules = self._rules(category, user, ip)
        for item, keys in rules:
            await self._guarded(item, keys, self._test)
        yield
        for item, keys in rules:
            await self._guarded(item, keys, self._count)

    def _rules(
        self, category: str, user: int | str | None, ip: str | None
    ) -> list[tuple[RateLimitItem, tuple[str, str, str]]]:
        if not self.enabled:
            return []
        return [
            (item, (category, scope, str(identity)))
            for scope, identity in (("user", user), ("ip", ip))
            if identity is not None
            for item in self.rules[f"{category}:{scope}"]
        ]

    async def _guarded(
        self,
        item: RateLimitItem,
        keys: tuple[str, str, str],
        step: Callable[[RateLimitItem, tuple[str, str, str]], Awaitable[None]],
    ) -> None:
        try:
            await step(item, keys)
        except RateLimited:
            raise
        except Exception as exc:  # Redis down: fail open, loudly
            log.warning("rate limiter unavailable, allowing the request: %s", exc)

    async def _hit(self, item: RateLimitItem, keys: tuple[str, str, str]) -> None:
        if not await self.strategy.hit(item, *keys):
            await self._refuse(item, keys)

    async def _test(self, item: RateLimitItem, keys: tuple[str, str, str]) -> None:
        if not await self.strategy.test(item, *keys):
            await self._refuse(item, keys)

    async def _count(self, item: RateLimitItem, keys: tuple[str, str, str]) -> None:
        await self.strategy.hit(item, *keys)

    async def _refuse(self, item: RateLimitItem, keys: tuple[str, str, str]) -> None:
        stats = await self.strategy.get_window_stats(item, *keys)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        self.on_refused(f"{keys[0]}:{keys[1]}")
        raise RateLimited(retry_after)

    async def reset(self) -> None:
        await self.storage.reset()


async def limiter(request: Request) -> RateLimiter:
    return app_state(request).limiter


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


Limiter = Annotated[RateLimiter, Depends(limiter)]
