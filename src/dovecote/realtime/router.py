"""Live delivery endpoints (SPEC §5): the `/ws/notify` socket and its polling twin. Thin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, WebSocket

from dovecote.auth.dependencies import CurrentUser
from dovecote.core.deps import AppSettings, UoW
from dovecote.core.openapi import errors
from dovecote.core.pagination import Absent, NonNegativeInt, absolute_url, query_int
from dovecote.core.routing import Router
from dovecote.core.schemas import Page
from dovecote.core.state import AppState
from dovecote.pm.context import Context
from dovecote.realtime import service, socket
from dovecote.realtime.hub import Hub
from dovecote.realtime.schemas import InteractionFrame
from dovecote.uploads.router import file_links

DEFAULT_LIMIT = 50
MAX_LIMIT = 100

# Registered before pm's router: `/api/v2/pm/events/` must not be read as `/api/v2/pm/{id}/`.
router = Router(tags=["live delivery"])
socket_router = APIRouter()


async def _context(request: Request, uow: UoW, settings: AppSettings) -> Context:
    return service.shaping_context(uow, settings, file_links(request))


@router.get(
    "/api/v2/pm/events/",
    response_model=Page[InteractionFrame],
    responses=errors(400, 401, 410),
    summary="The caller's live events after a cursor (polling twin of /ws/notify)",
)
async def events(
    request: Request,
    ctx: Annotated[Context, Depends(_context)],
    user: CurrentUser,
    since: Annotated[
        NonNegativeInt | Absent | None,
        Query(
            description="The last event id received. Absent: from the oldest event kept. "
            "410 `cursor_too_old` when events after it are no longer kept: reload, then "
            "continue from the `event_id` the answer names."
        ),
    ] = None,
    limit: Annotated[
        NonNegativeInt | Absent | None,
        Query(description=f"Page size, default {DEFAULT_LIMIT}, at most {MAX_LIMIT} (clamped)."),
    ] = None,
) -> Page[InteractionFrame]:
    del since, limit  # declared for the OpenAPI document; read with the `undefined` rule
    cursor = query_int(request, "since", minimum=0)
    size = min(query_int(request, "limit", minimum=0) or DEFAULT_LIMIT, MAX_LIMIT)
    page = await service.events_page(ctx, user, cursor, size)
    next_url = absolute_url(request, since=page.next_since, limit=size) if page.next_since else None
    return Page[InteractionFrame](
        count=page.count, next=next_url, previous=None, results=page.results
    )


@socket_router.websocket("/ws/notify")
@socket_router.websocket("/ws/notify/")
async def notify(websocket: WebSocket) -> None:
    """`?subscribe-user[&since=EVENT_ID]`, token in the `__<token>` subprotocol."""
    state: AppState = websocket.app.state.dovecote
    hub = state.hub
    if not isinstance(hub, Hub):  # app.py builds a Hub; core types it only as a Listener
        raise TypeError(f"expected the live Hub, got {type(hub).__name__}")
    await socket.serve(websocket, state, hub)
