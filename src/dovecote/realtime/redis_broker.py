"""The broker for several server processes: Redis pub/sub on one channel.

Every process subscribes to the channel and hands what it hears to its hub; a process also
hands its own events to its hub directly (no round trip, and its own sockets keep working
while Redis is away). Redis pub/sub delivers at most once: a message published while a
subscriber is disconnected is lost. That is why every (re)subscription, once Redis confirms
it, makes every local socket re-read its cursor from the database (`on_resync`), and why
each socket also re-checks its cursor periodically (realtime/socket.py).

One channel for all users keeps subscribing out of the connect path (nothing to wait for
when a socket opens); every process sees every nudge, which is a few dozen bytes each.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import orjson
import redis.asyncio as redis

from dovecote.core.broker import Kick, Listener, LiveEvent

log = logging.getLogger("dovecote.realtime")

CHANNEL = "dovecote:live"
START_TIMEOUT_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 5.0


class RedisBroker:
    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        self._origin = secrets.token_hex(8)
        self.client_name = f"dovecote-live-{self._origin}"
        # Publishing must not hang on a dead Redis; the subscription must not time out when
        # the channel is merely quiet: two clients.
        self._publisher = redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5, client_name=self.client_name
        )
        self._subscriber = redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_keepalive=True, client_name=self.client_name
        )
        self._channel = channel
        self._listener: Listener | None = None
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self._first_attempt = asyncio.Event()  # subscribed, or failed to

    async def start(self, listener: Listener) -> None:
        self._listener = listener
        self._task = asyncio.create_task(self._listen(), name="dovecote-redis-broker")
        try:
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                await self._first_attempt.wait()
        except TimeoutError:
            pass
        if not self.subscribed.is_set():
            log.warning("Redis is not answering; live delivery between processes waits for it")

    async def publish(self, events: Sequence[LiveEvent]) -> None:
        if not events:
            return
        if self._listener is not None:
            self._listener.on_events(events)
        rows = [[e.user_id, e.event_id, e.activity_type, e.thread_id, e.message_id] for e in events]
        body: dict[str, Any] = {"o": self._origin, "e": rows}
        senders = [[e.user_id, e.event_id, e.from_connection] for e in events if e.from_connection]
        if senders:  # a key of its own: processes that do not know it still read "e"
            body["f"] = senders
        await self._send(body)

    async def kick(self, kick: Kick) -> None:
        if self._listener is not None:
            self._listener.on_kick(kick)
        await self._send({"o": self._origin, "k": {"t": kick.token_ids, "u": kick.user_ids}})

    async def _send(self, body: dict[str, Any]) -> None:
        try:
            await self._publisher.publish(self._channel, orjson.dumps(body))
        except (redis.RedisError, OSError) as exc:
            # Other processes' sockets catch up at their next nudge or check.
            log.warning("live nudge not published (%s)", exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        await self._publisher.aclose()
        await self._subscriber.aclose()
        self._listener = None

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        # From here on nothing published is missed: re-read what may have been.
                        self.subscribed.set()
                        self._first_attempt.set()
                        backoff = 0.1
                        if self._listener is not None:
                            self._listener.on_resync()
                    elif message["type"] == "message":
                        self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed.clear()
                self._first_attempt.set()
                log.warning("Redis subscription lost (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            finally:
                with suppress(Exception):
                    await pubsub.aclose()

    def _dispatch(self, data: bytes) -> None:
        try:
            body: dict[str, Any] = orjson.loads(data)
            if body.get("o") == self._origin or self._listener is None:
                return
            if "e" in body:
                self._listener.on_events(_events(body))
            elif "k" in body:
                kick = body["k"]
                self._listener.on_kick(
                    Kick(tuple(map(int, kick.get("t", ()))), tuple(map(int, kick.get("u", ()))))
                )
        except (ValueError, TypeError, KeyError):
            log.warning("ignored a malformed live message on %s", self._channel)


def _events(body: dict[str, Any]) -> list[LiveEvent]:
    senders = {(int(u), int(e)): str(c) for u, e, c in body.get("f", ())}
    events = []
    for row in body["e"]:
        user_id, event_id, activity_type, thread_id, message_id = map(int, row)
        sender = senders.get((user_id, event_id))
        events.append(LiveEvent(user_id, event_id, activity_type, thread_id, message_id, sender))
    return events
