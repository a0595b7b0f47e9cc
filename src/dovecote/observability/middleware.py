"""One ASGI layer around the whole application: the request id, the access log and the
request, send and live-socket metrics.

It wraps even Starlette's error middleware (see `install` in observability/__init__.py), so a
500 answer carries its request id, is counted, and the traceback logged for it carries the id.
Routes are named by their template (`/api/v2/pm/{id}/`), never by the path: no ids in metric
labels, no query strings (signed links, tokens) in logs.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any

import orjson
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dovecote.observability import logs
from dovecote.observability.metrics import instruments
from dovecote.realtime.schemas import HEARTBEAT

access_log = logging.getLogger("dovecote.access")

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
UNMATCHED = "<unmatched>"
SEND_ROUTE = "/api/v2/pm/"
# Probes and scrapes would drown the access log at INFO: they are logged at DEBUG.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_ERROR_BODY = 8192
CLIENT_CLOSED = 499  # nginx's name for a request whose client left before the answer
# Methods a client may invent are one label value, not one each.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id_of(scope: Scope) -> str:
    """The client's X-Request-ID when it is short and plain (letters, digits, `.`, `_`, `:`,
    `-`; at most 128), else a new uuid4 hex."""
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            text: str = value.decode("latin-1")
            if _VALID_REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


def _error_code(body: bytes) -> str:
    """The first error code of an error answer in the contract's shape (or RFC 6749's)."""
    try:
        data = orjson.loads(body)
        first = data["errors"][0] if "errors" in data else {"code": data["error"]}
        code = first["messages"][0]["code"] if "messages" in first else first["code"]
    except Exception:
        return "unknown"
    return str(code)[:64] if isinstance(code, str) else "unknown"


class Observe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._templates: dict[str, str] = {}
        self._documented: frozenset[str] | None = None
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def route_of(self, scope: Scope) -> str:
        """The template of the route that answered. Twin spellings (with and without the
        trailing slash, core.routing.Router) are one route: the one the OpenAPI document
        names."""
        route = scope.get("route")
        template = getattr(route, "path_format", None)
        if not isinstance(template, str):
            return UNMATCHED
        if isinstance(route, Mount):
            template = template.rstrip("/") + "/{path}"
        if template not in self._templates:
            self._templates[template] = self._canonical(scope, template)
        return self._templates[template]

    def _canonical(self, scope: Scope, template: str) -> str:
        if self._documented is None:
            try:
                self._documented = frozenset(scope["app"].openapi()["paths"])
            except Exception:
                self._documented = frozenset()
        if template in self._documented:
            return template
        twin = template[:-1] if template.endswith("/") else template + "/"
        return twin if twin in self._documented else template

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id_of(scope)
        logs.request_id.set(rid)
        header = (REQUEST_ID_HEADER, rid.encode())
        started = time.perf_counter()
        status, answered = 500, False
        error_body: bytearray | None = None
        is_send = scope["method"] == "POST" and scope["path"].rstrip("/") == "/api/v2/pm"

        async def sending(message: Message) -> None:
            nonlocal status, error_body, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
                message = {**message, "headers": [*message.get("headers", ()), header]}
                if is_send and status >= 400:
                    error_body = bytearray()
            elif error_body is not None and len(error_body) < MAX_ERROR_BODY:
                error_body += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except asyncio.CancelledError:
            if not answered:  # the client left before the answer: not a server error
                status = CLIENT_CLOSED
            raise
        finally:
            seconds = time.perf_counter() - started
            route = self.route_of(scope)
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            self._count(method, route, status, seconds)
            if is_send and route == SEND_ROUTE:
                self._count_send(status, bytes(error_body or b""))
            self._log(scope, method, route, status, seconds)

    def _count(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # labels() takes a lock and builds a tuple: once per series
            gauges = instruments()
            children = (
                gauges.requests.labels(method, route, str(status)),
                gauges.latency.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def _count_send(self, status: int, body: bytes) -> None:
        sends = instruments().sends
        if status < 400:
            sends.labels("created", "").inc()
        else:
            outcome = "refused" if status < 500 else "error"
            sends.labels(outcome, _error_code(body)).inc()

    def _log(self, scope: Scope, method: str, route: str, status: int, seconds: float) -> None:
        level = logging.DEBUG if route in QUIET_ROUTES else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        duration_ms = round(seconds * 1000, 1)
        client = scope.get("client")
        access_log.log(
            level,
            "%s %s %s %.1fms",
            method,
            route,
            status,
            duration_ms,
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "client": client[0] if client else None,
            },
        )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id_of(scope)
        logs.request_id.set(rid)
        gauges = instruments()
        started = time.perf_counter()
        accepted = False
        status = 403  # closed before accepting: the server answers 403

        async def sending(message: Message) -> None:
            nonlocal accepted, status
            kind = message["type"]
            if kind == "websocket.send":
                heartbeat = message.get("text") == HEARTBEAT
                gauges.frames_sent.labels("heartbeat" if heartbeat else "event").inc()
            elif kind == "websocket.accept":
                headers: Any = message.get("headers") or ()
                message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, rid.encode())]}
                accepted, status = True, 101
                gauges.sockets_open.inc()
            elif kind == "websocket.http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if accepted:
                gauges.sockets_open.dec()
            self._log(scope, "WS", self.route_of(scope), status, time.perf_counter() - started)
