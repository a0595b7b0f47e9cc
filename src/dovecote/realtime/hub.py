"""The sockets open in this process, and how broker traffic reaches them.

Each open socket is a `LiveConnection`: a bounded mailbox of nudges (event ids) and a stop
signal. The hub only routes: a nudge for user U goes into the mailbox of each of U's
connections; the connection's writer reads the frames it has not sent yet from the database
(realtime/socket.py). A mailbox that overflows means the socket's writer is stuck: the
connection is stopped with 1013 and the client reconnects (with `since`, it loses nothing).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

from dovecote.auth.principal import Principal
from dovecote.core.broker import Kick, LiveEvent

log = logging.getLogger("dovecote.realtime")

# A nudge that says "something may have been lost: read your cursor from the database".
RESYNC = sys.maxsize

CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_UNAUTHORIZED = 4401
CLOSE_IDLE = 4408


@dataclass(eq=False)
class LiveConnection:
    principal: Principal
    token: str
    mailbox: asyncio.Queue[int]
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    close_reason: str = ""
    sent: int = 0  # the id of the last event sent (kept by the socket's writer)
    connection_id: str | None = None  # the page's own id for this socket (core/web_client.py)
    # Events of sends made from this very page: the writer passes over their frames.
    skipped: set[int] = field(default_factory=set)

    @property
    def user_id(self) -> int:
        return self.principal.id

    def skip(self, event_id: int) -> None:
        """Do not send this event's frame (too late when it was sent already)."""
        if event_id > self.sent:
            self.skipped.add(event_id)

    def should_send(self, event_id: int) -> bool:
        """Whether the writer sends the frame of `event_id`; forgets the skip once used."""
        if event_id in self.skipped:
            self.skipped.discard(event_id)
            return False
        return True

    def nudge(self, event_id: int) -> None:
        if self.stopped.is_set():
            return
        try:
            self.mailbox.put_nowait(event_id)
        except asyncio.QueueFull:
            self.stop(CLOSE_TRY_AGAIN_LATER, "Too slow: live events are piling up.")

    def stop(self, code: int, reason: str) -> None:
        """Ask the socket to close with `code`; the first reason given wins."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.stopped.set()


_hubs: weakref.WeakSet[Hub] = weakref.WeakSet()


def running_hubs() -> list[Hub]:
    """The hubs of this process's running apps (one, outside tests)."""
    return list(_hubs)


class Hub:
    """Routes broker traffic to this process's open sockets (the broker's Listener)."""

    def __init__(self, queue_size: int, db_concurrency: int) -> None:
        _hubs.add(self)
        self._queue_size = queue_size
        # Sockets share the database pool with requests: bound what they may hold at once.
        self.db_gate = asyncio.Semaphore(db_concurrency)
        self._by_user: dict[int, set[LiveConnection]] = {}
        self._closing = False
        self._empty = asyncio.Event()
        self._empty.set()

    @property
    def connection_count(self) -> int:
        return sum(len(c) for c in self._by_user.values())

    def connections(self, user_id: int | None = None) -> list[LiveConnection]:
        if user_id is not None:
            return list(self._by_user.get(user_id, ()))
        return [c for conns in self._by_user.values() for c in conns]

    def register(
        self, principal: Principal, token: str, connection_id: str | None = None
    ) -> LiveConnection:
        connection = LiveConnection(
            principal, token, asyncio.Queue(self._queue_size), connection_id=connection_id
        )
        if self._closing:
            connection.stop(CLOSE_GOING_AWAY, "The server is shutting down.")
        self._by_user.setdefault(principal.id, set()).add(connection)
        self._empty.clear()
        return connection

    def unregister(self, connection: LiveConnection) -> None:
        conns = self._by_user.get(connection.user_id)
        if conns is not None:
            conns.discard(connection)
            if not conns:
                del self._by_user[connection.user_id]
        if not self._by_user:
            self._empty.set()

    # --- Listener ---------------------------------------------------------------------------

    def on_events(self, events: Sequence[LiveEvent]) -> None:
        newest: dict[int, int] = {}
        for event in events:
            if event.from_connection is not None:  # marked before any nudge can send it
                self._skip_on(event.user_id, event.from_connection, event.event_id)
            if event.event_id > newest.get(event.user_id, 0):
                newest[event.user_id] = event.event_id
        for user_id, event_id in newest.items():
            for connection in tuple(self._by_user.get(user_id, ())):
                connection.nudge(event_id)

    def _skip_on(self, user_id: int, connection_id: str, event_id: int) -> None:
        for connection in self._by_user.get(user_id, ()):
            if connection.connection_id == connection_id:
                connection.skip(event_id)

    def on_kick(self, kick: Kick) -> None:
        tokens, users = set(kick.token_ids), set(kick.user_ids)
        for connection in self.connections():
            token_id = connection.principal.oauth_token_id
            if connection.user_id in users or (token_id is not None and token_id in tokens):
                connection.stop(CLOSE_UNAUTHORIZED, "The token is no longer valid.")

    def on_resync(self) -> None:
        for connection in self.connections():
            connection.nudge(RESYNC)

    # --- shutdown ---------------------------------------------------------------------------

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Close every socket with 1001 and wait (a while) for them to finish."""
        self._closing = True
        for connection in self.connections():
            connection.stop(CLOSE_GOING_AWAY, "The server is shutting down.")
        try:
            async with asyncio.timeout(grace_seconds):
                await self._empty.wait()
        except TimeoutError:
            log.warning("%d live socket(s) did not close in time", self.connection_count)
