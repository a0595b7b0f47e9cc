"""Private-message endpoints (SPEC §3). Thin: parse, call the service, shape the answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request, Response

from dovecote.auth.dependencies import CurrentCaller, CurrentUser
from dovecote.auth.principal import Caller
from dovecote.core import web_client
from dovecote.core.deps import AppSettings, ObjectId, UoW
from dovecote.core.errors import InvalidInput
from dovecote.core.openapi import body_of, errors
from dovecote.core.pagination import (
    Absent,
    OptionalId,
    PageParams,
    Paging,
    PositiveInt,
    absolute_url,
    offset_page,
    query_int,
    query_value,
)
from dovecote.core.ratelimit import Limiter, client_ip
from dovecote.core.requests import read_body
from dovecote.core.routing import Router, unit_of_work
from dovecote.core.schemas import MAX_ID, Page
from dovecote.core.state import app_state
from dovecote.core.web_client import CONNECTION_HEADER
from dovecote.pm import deleting, reading, sending
from dovecote.pm.context import Context
from dovecote.pm.schemas import MessageOut, SendMessageIn, SnippetOut
from dovecote.uploads.router import file_links
from dovecote.users.schemas import UserOut
from dovecote.users.service import user_out

router = Router(prefix="/api/v2/pm", tags=["private messages"])


_MESSAGE = "#/paths/~1api~1v2~1pm~1{id}~1"
_SENT_LINKS: dict[str, Any] = {
    "ReadMessage": {"operationRef": f"{_MESSAGE}/get", "parameters": {"id": "$response.body#/id"}},
    "DeleteMessage": {
        "operationRef": f"{_MESSAGE}/delete",
        "parameters": {"id": "$response.body#/id"},
    },
    "ReadThread": {
        "operationRef": "#/paths/~1api~1v2~1pm~1/get",
        "parameters": {"thread": "$response.body#/thread_id"},
    },
}


async def _context(request: Request, uow: UoW, settings: AppSettings) -> Context:
    return Context(
        uow=uow,
        settings=settings,
        publish=app_state(request).broker.publish,
        file_links=file_links(request),
        from_connection=web_client.connection_id(request.headers.get(CONNECTION_HEADER)),
    )


Ctx = Annotated[Context, Depends(_context)]


async def _thread_reads_write(request: Request) -> None:
    """Reading a thread marks it seen: on SQLite that transaction must be a writer's."""
    if query_value(request, "thread") or query_value(request, "user"):
        unit_of_work(request).write = True


IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=255,
        description="Makes the send exactly-once: a retry with the same key returns the "
        "first answer (201) and stores nothing new; reusing it for another body is a 422.",
    ),
]
SendResponseShape = Annotated[
    str | None,
    Header(
        max_length=20,
        description="`list`: answer with a list, one element per recipient (what react-ui "
        "reads); `object`: the seed's single object. Absent: DOVECOTE_PM_SEND_RESPONSE.",
    ),
]
ConnectionId = Annotated[
    str | None,
    Header(
        max_length=64,
        description="The sending page's connection id: the live socket opened with the "
        "same id does not get this message's frame (the other sockets do).",
    ),
]


@router.post(
    "/",
    status_code=201,
    response_model=MessageOut | list[MessageOut],
    responses={
        201: {"description": "The message as stored.", "links": _SENT_LINKS},
        **errors(400, 401, 403, 413, 422, 429, 503),
    },
    openapi_extra=body_of(SendMessageIn, "application/json", "application/x-www-form-urlencoded"),
    summary="Send a message",
)
async def send(
    request: Request,
    ctx: Ctx,
    caller: CurrentCaller,
    limiter: Limiter,
    idempotency_key: IdempotencyKey = None,
    x_dovecote_send_response: SendResponseShape = None,
    x_dovecote_connection: ConnectionId = None,
) -> MessageOut | list[MessageOut]:
    del x_dovecote_connection  # read by the context, declared here for the document
    shape = web_client.send_response(x_dovecote_send_response) or ctx.settings.pm_send_response
    body = await read_body(request, SendMessageIn)
    async with limiter.counting_accepted("send", user=caller.user_id, ip=client_ip(request)):
        messages = await sending.send_message(ctx, caller, body, idempotency_key)
    return messages if shape == "list" else messages[0]


def _query_id(request: Request, name: str) -> int | None:
    """An id from the query string: a positive integer the database can hold, or absent."""
    value = query_int(request, name, minimum=1)
    if value is not None and value > MAX_ID:
        raise InvalidInput.field(name, "max_value", f"`{name}` is not a valid id.")
    return value


def _target(request: Request) -> tuple[int | None, int | None]:
    thread_id = _query_id(request, "thread")
    other_id = _query_id(request, "user")
    if query_value(request, "group") is not None:
        raise InvalidInput.field(
            "group", "groups_disabled", "Group conversations are not enabled on this server."
        )
    if thread_id is not None and other_id is not None:
        raise InvalidInput.field("thread", "ambiguous", "Give `thread` or `user`, not both.")
    return thread_id, other_id


@router.get(
    "/",
    response_model=Page[SnippetOut] | Page[MessageOut],
    responses=errors(400, 401, 404),
    dependencies=[Depends(_thread_reads_write)],
    summary="The inbox, or one thread's messages with ?thread= or ?user=",
)
async def inbox_or_thread(
    request: Request,
    ctx: Ctx,
    caller: CurrentCaller,
    paging: Paging,
    thread: OptionalId = None,
    user_: Annotated[PositiveInt | Absent | None, Query(alias="user")] = None,
    before_message: OptionalId = None,
    from_message: OptionalId = None,
) -> Page[SnippetOut] | Page[MessageOut]:
    thread_id, other_id = _target(request)
    if thread_id is None and other_id is None:
        page = await reading.inbox(ctx, caller, paging.limit, paging.offset)
        return offset_page(request, paging, page.count, page.results)
    return await _thread(request, ctx, caller, paging, thread_id, other_id)


async def _thread(
    request: Request,
    ctx: Context,
    caller: Caller,
    paging: PageParams,
    thread_id: int | None,
    other_id: int | None,
) -> Page[MessageOut]:
    cursor = reading.ThreadCursor(
        before_message=_query_id(request, "before_message"),
        from_message=_query_id(request, "from_message"),
    )
    if cursor.before_message is not None and cursor.from_message is not None:
        raise InvalidInput.field(
            "before_message", "ambiguous", "Give `before_message` or `from_message`, not both."
        )
    user, found = await reading.access_thread_of_caller(
        ctx, caller, thread_id=thread_id, other_id=other_id
    )
    membership, people = (found.membership, found.people) if found else (None, None)
    page = await reading.read_thread(
        ctx, user, membership, cursor, paging.limit, paging.offset, people
    )
    keyset: dict[str, Any] = {"offset": None, "limit": paging.limit}
    return Page[MessageOut](
        count=page.count,
        next=absolute_url(request, **keyset, from_message=None, before_message=page.older_than)
        if page.older_than
        else None,
        previous=absolute_url(request, **keyset, before_message=None, from_message=page.newer_from)
        if page.newer_from
        else None,
        results=page.results,
    )


@router.delete(
    "/",
    status_code=204,
    responses=errors(400, 401, 404),
    summary="Delete a thread for the caller (?thread= or ?user=)",
)
async def delete_thread(
    request: Request,
    ctx: Ctx,
    user: CurrentUser,
    thread: OptionalId = None,
    user_: Annotated[PositiveInt | Absent | None, Query(alias="user")] = None,
) -> Response:
    thread_id, other_id = _target(request)
    if thread_id is None and other_id is None:
        raise InvalidInput.field("thread", "required", "Name the thread with `thread` or `user`.")
    await deleting.delete_thread_for(ctx, user, thread_id=thread_id, other_id=other_id)
    return Response(status_code=204)


@router.get(
    "/search/",
    response_model=Page[UserOut],
    responses=errors(400, 401),
    summary="Search people the caller may write to",
)
async def search(
    request: Request,
    ctx: Ctx,
    user: CurrentUser,
    paging: Paging,
    limiter: Limiter,
    user_: Annotated[str, Query(alias="user", min_length=1, max_length=150)],
) -> Page[UserOut]:
    await limiter.check("search", user=user.id, ip=client_ip(request))
    term = query_value(request, "user")  # blank or `undefined` counts as absent
    if term is None:
        raise InvalidInput.field("user", "required", "Give a search term in `user`.")
    if "\x00" in term:
        raise InvalidInput.field("user", "invalid", "`user` may not hold NUL characters.")
    if len(term) > 150:
        raise InvalidInput.field("user", "max_length", "The search term is too long.")
    count, rows = await reading.search_people(ctx, user, term, paging.limit, paging.offset)
    return offset_page(request, paging, count, [user_out(r) for r in rows])


@router.get(
    "/{id:int}/", response_model=MessageOut, responses=errors(400, 401, 404), summary="One message"
)
async def read_message(id: ObjectId, ctx: Ctx, user: CurrentUser) -> MessageOut:
    return await reading.read_message(ctx, user, id)


@router.delete(
    "/{id:int}/", status_code=204, responses=errors(400, 401, 403, 404), summary="Delete a message"
)
async def delete_message(id: ObjectId, ctx: Ctx, user: CurrentUser) -> Response:
    await deleting.delete_message(ctx, user, id)
    return Response(status_code=204)
