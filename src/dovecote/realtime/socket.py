"""One live socket, from handshake to close (SPEC §5).

Three tasks per socket, none holding a database session between turns:
- the reader echoes heartbeats and closes an idle socket (no message for the idle timeout);
- the writer sends frames in event-id order: on connect the backlog after `since` (read AFTER
  the socket is registered with the hub, so nothing falls between backlog and live), then
  whatever a nudge reveals: it reads every event after the last one sent, so a nudge that
  skips ids (lost or late deliveries) fills the gap from the database and a late nudge for
  an event already sent is ignored;
- the checker re-authenticates the token every `ws_recheck_seconds` (revoked or expired
  token, deleted user: close 4401) and compares the user's stream position with what was sent
  (a nudge lost by the broker costs at most one check interval).
"""

from __future__ import annotations

import asyncio
import logging
import random
from contextlib import suppress
from dataclasses import dataclass

from fastapi import WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from dovecote.core import web_client
from dovecote.core.cors import socket_origin_allowed
from dovecote.core.errors import AuthenticationFailed, InvalidInput
from dovecote.core.handlers import error_body
from dovecote.core.schemas import MAX_ID
from dovecote.core.state import AppState
from dovecote.core.web_client import CONNECTION_QUERY
from dovecote.realtime import service
from dovecote.realtime.hub import (
    CLOSE_GOING_AWAY,
    CLOSE_IDLE,
    CLOSE_INTERNAL_ERROR,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNAUTHORIZED,
    Hub,
    LiveConnection,
)
from dovecote.realtime.schemas import HEARTBEAT
from dovecote.uploads.files import Linker

log = logging.getLogger("dovecote.realtime")

TOKEN_PREFIX = "__"
CLOSE_TIMEOUT_SECONDS = 2.0


class _Stopped(Exception):
    """The connection was stopped (its close code is set); unwind quietly."""


def offered_token(websocket: WebSocket) -> tuple[str, str] | None:
    """(subprotocol, token) from the `__<token>` subprotocol the client offers."""
    for protocol in websocket.scope.get("subprotocols") or ():
        if protocol.startswith(TOKEN_PREFIX) and len(protocol) > len(TOKEN_PREFIX):
            return protocol, protocol[len(TOKEN_PREFIX) :]
    return None


def requested_cursor(websocket: WebSocket) -> int | None:
    """`since` from the query string; ValueError when it is not a non-negative integer."""
    raw = websocket.query_params.get("since")
    if raw is None or raw.strip() in ("", "undefined", "null"):
        return None
    value = int(raw.strip())
    if not 0 <= value <= MAX_ID:
        raise ValueError(raw)
    return value


async def refuse(websocket: WebSocket, status: int, detail: str, code: str) -> None:
    """Refuse the handshake: an HTTP answer in the error shape where the server allows it,
    else a plain close before accepting (the server answers 403)."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    try:
        await websocket.send_denial_response(
            JSONResponse(error_body(detail, code), status, headers=headers)
        )
    except RuntimeError:
        await websocket.close(code=1008)


@dataclass(frozen=True)
class _Handshake:
    protocol: str
    token: str
    cursor: int | None
    connection_id: str | None


class _Refused(Exception):
    def __init__(self, status: int, detail: str, code: str) -> None:
        super().__init__(detail)
        self.status, self.detail, self.code = status, detail, code


def _handshake(websocket: WebSocket, state: AppState) -> _Handshake:
    """What the client asks for, checked in the order the answers are given (_Refused)."""
    origin = websocket.headers.get("origin")
    if not socket_origin_allowed(state.settings, origin, websocket.headers.get("host")):
        raise _Refused(403, f"Origin {origin} may not open live sockets.", "origin_not_allowed")
    offer = offered_token(websocket)
    try:
        cursor = requested_cursor(websocket)
    except ValueError:
        raise _Refused(400, "`since` must be an event id.", "invalid") from None
    if offer is None:
        raise _Refused(401, "Authentication credentials were not provided.", "not_authenticated")
    try:
        connection_id = web_client.connection_id(websocket.query_params.get(CONNECTION_QUERY))
    except InvalidInput as exc:
        raise _Refused(400, exc.errors[0].message, "invalid") from None
    return _Handshake(offer[0], offer[1], cursor, connection_id)


async def serve(websocket: WebSocket, state: AppState, hub: Hub) -> None:
    try:
        asked = _handshake(websocket, state)
    except _Refused as no:
        return await refuse(websocket, no.status, no.detail, no.code)
    protocol, token, cursor = asked.protocol, asked.token, asked.cursor
    try:
        async with hub.db_gate:
            principal = await service.authenticate_socket(state.database, state.jwt_secret, token)
        # Subscribed before any backlog is read.
        connection = hub.register(principal, token, asked.connection_id)
    except AuthenticationFailed as exc:
        return await refuse(websocket, 401, exc.message, exc.code)
    except (SQLAlchemyError, OSError):
        return await _unavailable(websocket)
    try:
        replay = cursor is not None
        if cursor is None:  # "from now on", where now is before the client hears it is open
            try:
                async with hub.db_gate:
                    cursor = await service.stream_position(state.database, principal.id)
            except (SQLAlchemyError, OSError):
                return await _unavailable(websocket)
        await websocket.accept(subprotocol=protocol)
        await LiveSocket(websocket, state, hub, connection).run(cursor, replay)
    finally:
        hub.unregister(connection)


async def _unavailable(websocket: WebSocket) -> None:
    log.warning("live socket refused: database unavailable", exc_info=True)
    await refuse(websocket, 503, "The database is unavailable.", "database_unavailable")


class LiveSocket:
    def __init__(
        self, websocket: WebSocket, state: AppState, hub: Hub, connection: LiveConnection
    ) -> None:
        self.websocket = websocket
        self.state = state
        self.settings = state.settings
        # Links in frames point where the socket came in (http for ws, https for wss).
        base = str(websocket.base_url).replace("ws", "http", 1).rstrip("/")
        self.file_links = Linker.for_server(state.jwt_secret, state.settings, base).file_out
        self.hub = hub
        self.connection = connection
        self._send_lock = asyncio.Lock()

    async def run(self, cursor: int, replay: bool) -> None:
        reader = asyncio.create_task(self._read())
        tasks = {
            reader,
            asyncio.create_task(self._write(cursor, replay)),
            asyncio.create_task(self._check()),
            asyncio.create_task(self.connection.stopped.wait()),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            error = None if task.cancelled() else task.exception()
            if error is not None and not isinstance(error, _Stopped):
                log.error("live socket failed", exc_info=error)
                self.connection.stop(CLOSE_INTERNAL_ERROR, "Internal error.")
        client_left = reader in done and not reader.cancelled() and reader.exception() is None
        if client_left and reader.result():  # the client went away: nobody to say goodbye to
            return
        await self._close()

    async def _close(self) -> None:
        code = self.connection.close_code or CLOSE_INTERNAL_ERROR
        with suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self.websocket.close(code, self.connection.close_reason)

    async def _send(self, text: str) -> None:
        try:
            async with asyncio.timeout(self.settings.ws_send_timeout_seconds), self._send_lock:
                await self.websocket.send_text(text)
        except TimeoutError:
            self.connection.stop(CLOSE_TRY_AGAIN_LATER, "Too slow: frames are not being read.")
            raise _Stopped() from None
        except (OSError, WebSocketDisconnect):  # the client left while we were writing
            self.connection.stop(CLOSE_GOING_AWAY, "The client went away.")
            raise _Stopped() from None

    async def _read(self) -> bool:
        """Echo heartbeats until the client leaves (True) or falls silent (False)."""
        while True:
            try:
                async with asyncio.timeout(self.settings.ws_idle_timeout_seconds):
                    message = await self.websocket.receive()
            except TimeoutError:
                self.connection.stop(CLOSE_IDLE, "No heartbeat.")
                return False
            if message["type"] == "websocket.disconnect":
                return True
            if message.get("text") == HEARTBEAT:
                await self._send(HEARTBEAT)

    async def _write(self, cursor: int, replay: bool) -> None:
        mailbox = self.connection.mailbox
        self.connection.sent = last = cursor
        if replay:
            last = await self._pump(cursor)
        while True:
            nudged = await mailbox.get()
            while not mailbox.empty():
                nudged = max(nudged, mailbox.get_nowait())
            if nudged > last:
                last = await self._pump(last)

    async def _pump(self, last: int) -> int:
        """Send every event after `last`, page by page; returns the new last id. Where events
        were already removed by housekeeping, a `reload` frame stands in for them."""
        page = self.settings.ws_replay_page
        while True:
            async with self.hub.db_gate:
                frames = await service.frames_after(
                    self.state.database,
                    self.settings,
                    self.connection.user_id,
                    last,
                    page,
                    self.file_links,
                )
            for frame in frames:
                if self.connection.should_send(frame.data.event_id):
                    await self._send(frame.model_dump_json())
                last = self.connection.sent = frame.data.event_id
            if len(frames) < page:
                return last

    async def _check(self) -> None:
        interval = self.settings.ws_recheck_seconds
        while True:
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))
            try:
                async with self.hub.db_gate:
                    position = await service.recheck(
                        self.state.database,
                        self.state.jwt_secret,
                        self.connection.token,
                        self.connection.user_id,
                    )
            except (SQLAlchemyError, OSError):  # keep the socket; check again next time
                log.warning("live socket re-check failed", exc_info=True)
                continue
            if position is None:
                self.connection.stop(CLOSE_UNAUTHORIZED, "The token is no longer valid.")
                return
            if position > self.connection.sent:  # nudges were lost: catch up now
                self.connection.nudge(position)
