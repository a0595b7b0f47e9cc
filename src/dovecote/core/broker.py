"""Live events and the broker that carries them between server processes.

Events are written to the database in the sending transaction (the truth, with per-user
gap-free ids) and handed to the broker only after the commit. What travels through the broker
is a nudge: "user U has events up to N". Each connection then reads what it has not sent yet
from the database, so a lost nudge delays a frame but never loses it (see realtime/hub.py).

Two backends: `LocalBroker` (one server process, the default) and `RedisBroker`
(realtime/redis_broker.py, any number of processes sharing a Redis server).
"""

from __future__ import annotations

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
    # The sender's own event of a send made with `X-Dovecote-Connection`: the socket opened
    # with that id does not get the frame (its page shows the send's answer already).
    from_connection: str | None = None

    def as_dict(self) -> dict[str, int | str | None]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Kick:
    """Close at once every socket opened with one of these OAuth tokens or by these users."""

    token_ids: tuple[int, ...] = ()
    user_ids: tuple[int, ...] = ()


class Listener(Protocol):
    """The receiving side of a process: its hub of open sockets."""

    def on_events(self, events: Sequence[LiveEvent]) -> None: ...

    def on_kick(self, kick: Kick) -> None: ...

    def on_resync(self) -> None:
        """Nudges may have been lost (a broker reconnect): every socket re-reads its cursor."""


class Broker(Protocol):
    async def start(self, listener: Listener) -> None: ...

    async def publish(self, events: Sequence[LiveEvent]) -> None: ...

    async def kick(self, kick: Kick) -> None: ...

    async def close(self) -> None: ...


class LocalBroker:
    """Fan-out inside one process: straight to the process's hub."""

    def __init__(self) -> None:
        self._listener: Listener | None = None

    async def start(self, listener: Listener) -> None:
        self._listener = listener

    async def publish(self, events: Sequence[LiveEvent]) -> None:
        if self._listener is not None and events:
            self._listener.on_events(events)

    async def kick(self, kick: Kick) -> None:
        if self._listener is not None:
            self._listener.on_kick(kick)

    async def close(self) -> None:
        self._listener = None
