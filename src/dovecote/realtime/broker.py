"""Live events and the broker that carries them to connected sockets.

Events are written to the database in the sending transaction (the truth, with per-user
gap-free ids) and handed to the broker only after the commit (a nudge). The in-process broker
serves a single server process; a Redis broker connects several.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LiveEvent:
    user_id: int
    event_id: int
    activity_type: int
    thread_id: int
    message_id: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Broker(Protocol):
    async def publish(self, events: Sequence[LiveEvent]) -> None: ...

    def subscribe(self, user_id: int) -> asyncio.Queue[LiveEvent]: ...

    def unsubscribe(self, user_id: int, queue: asyncio.Queue[LiveEvent]) -> None: ...

    async def close(self) -> None: ...


class LocalBroker:
    """Fan-out inside one process. Queues are bounded; a full queue marks a slow consumer."""

    def __init__(self, queue_size: int = 256) -> None:
        self._queues: dict[int, set[asyncio.Queue[LiveEvent]]] = {}
        self._queue_size = queue_size

    async def publish(self, events: Sequence[LiveEvent]) -> None:
        self.deliver(events)

    def deliver(self, events: Sequence[LiveEvent]) -> None:
        for event in events:
            for queue in tuple(self._queues.get(event.user_id, ())):
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    queue.shutdown_slow = True  # type: ignore[attr-defined]

    def subscribe(self, user_id: int) -> asyncio.Queue[LiveEvent]:
        queue: asyncio.Queue[LiveEvent] = asyncio.Queue(self._queue_size)
        self._queues.setdefault(user_id, set()).add(queue)
        return queue

    def unsubscribe(self, user_id: int, queue: asyncio.Queue[LiveEvent]) -> None:
        queues = self._queues.get(user_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._queues[user_id]

    async def close(self) -> None:
        self._queues.clear()
