"""The rules of live delivery: who may listen, and what each user's frames say.

A frame is rendered from the database for the user who receives it: the message as in a
thread page (the same for both sides of a thread), and the snippet and unread count from the
receiver's own point of view. The shaping itself is pm.shaping's, so frames and REST agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from dovecote.auth import service as auth_service
from dovecote.auth.principal import Principal
from dovecote.core.broker import LiveEvent
from dovecote.core.db import Database, UnitOfWork
from dovecote.core.errors import AuthenticationFailed, CursorTooOld
from dovecote.core.settings import Settings
from dovecote.pm import repository as pm_repo
from dovecote.pm.context import Context, FileLinks, no_files
from dovecote.pm.shaping import message_out, snippet_out
from dovecote.realtime import repository as repo
from dovecote.realtime.schemas import (
    InteractionData,
    InteractionFrame,
    LiveFrame,
    NotificationObj,
    ReloadData,
    ReloadFrame,
)
from dovecote.users import repository as users_repo
from dovecote.users.repository import Person


async def _no_publish(_events: list[LiveEvent]) -> None:
    return None


def shaping_context(
    uow: UnitOfWork, settings: Settings, file_links: FileLinks = no_files
) -> Context:
    """The pm shaping context frames are rendered with."""
    return Context(uow=uow, settings=settings, publish=_no_publish, file_links=file_links)


# --- who may listen --------------------------------------------------------------------------


async def authenticate_socket(database: Database, secret: bytes, token: str) -> Principal:
    """The principal of a socket's token; AuthenticationFailed for a bad one."""
    async with database.read_sessions() as session:
        return await auth_service.authenticate(session, secret, token)


async def recheck(database: Database, secret: bytes, token: str, user_id: int) -> int | None:
    """The user's stream position if the socket's token still stands for them, else None
    (revoked or expired token, deleted or deactivated user)."""
    async with database.read_sessions() as session:
        try:
            principal = await auth_service.authenticate(session, secret, token)
        except AuthenticationFailed:
            return None
        if principal.id != user_id:
            return None
        return await repo.stream_position(session, user_id)


async def stream_position(database: Database, user_id: int) -> int:
    async with database.read_sessions() as session:
        return await repo.stream_position(session, user_id)


# --- what the frames say ---------------------------------------------------------------------


async def frames_after(
    database: Database,
    settings: Settings,
    user_id: int,
    after: int,
    limit: int,
    file_links: FileLinks = no_files,
) -> list[LiveFrame]:
    """Frames for up to `limit` of the user's events after `after`, oldest first, with a
    reload frame where kept events do not follow on (see `render_after`)."""
    uow = UnitOfWork(database, write=False)
    try:
        context = shaping_context(uow, settings, file_links)
        return await render_after(context, user_id, after, limit)
    finally:
        await uow.rollback()
        await uow.close()


def _reload(event_id: int) -> ReloadFrame:
    return ReloadFrame(data=ReloadData(event_id=event_id))


async def render_after(ctx: Context, user_id: int, after: int, limit: int) -> list[LiveFrame]:
    """The user's events after `after` as frames. Event ids are gap-free per user and
    committed in order, so a kept event that does not follow the one before (or the cursor)
    means housekeeping removed those between: a reload frame stands in for them. Only an empty
    page costs a query more, to tell "nothing new" from "everything after the cursor is gone"."""
    session = ctx.uow.session
    rows = await repo.events_after(session, user_id, after, limit)
    if not rows:
        newest, first_kept = await repo.kept_after(session, user_id, after)
        if newest > after and (first_kept is None or first_kept > after + 1):
            return [_reload(newest if first_kept is None else first_kept - 1)]
        return []
    snippets = await pm_repo.snippets_of(session, user_id, {r.thread_id for r in rows})
    named = {user_id}
    for row in (*rows, *snippets.values()):
        named.update((row.sender_id, row.user_low_id, row.user_high_id))
    users = await users_repo.get_users(session, {u for u in named if u is not None})
    unread = int(rows[0].unread_threads)
    frames: list[LiveFrame] = []
    for row in rows:
        if row.event_id != after + 1:
            frames.append(_reload(row.event_id - 1))
        frames.append(_frame(ctx, row, user_id, snippets.get(row.thread_id), users, unread))
        after = row.event_id
    return frames


def _frame(
    ctx: Context,
    row: Row[Any],
    user_id: int,
    snippet: Row[Any] | None,
    users: dict[int, Person],
    unread: int,
) -> InteractionFrame:
    receiver = None
    if row.group_id is None:
        receiver = row.user_high_id if row.sender_id == row.user_low_id else row.user_low_id
    message = message_out(ctx, row, row.thread_id, users, receiver)
    if message.status == "deleted":  # gone from every thread: its content goes with it
        message = message.model_copy(update={"message": "", "file": None})
    new = row.activity_type == pm_repo.NEW_MESSAGE
    sid = f"pm-{row.id}"
    return InteractionFrame(
        data=InteractionData(
            event_id=row.event_id,
            activity_type=row.activity_type,
            thread_id=row.thread_id,
            feed_serialization_id=sid,
            count_interactions=unread,
            notification_obj=NotificationObj(
                is_new=new and row.sender_id != user_id,
                sid=sid,
                type="private_message" if new else "delete_private_message",
                active_at=row.event_at,
                message=message,
                snippet=snippet_out(ctx, snippet, users) if snippet else None,
            ),
        )
    )


# --- polling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventsPage:
    count: int  # events after the cursor
    results: list[InteractionFrame]
    next_since: int | None  # the cursor of the next page, when there is one


async def events_page(ctx: Context, user: Principal, since: int | None, limit: int) -> EventsPage:
    """A page of events after `since`. A cursor older than what is kept is refused
    (CursorTooOld: reload, then continue from the id it names); without a cursor the page
    starts at the oldest event kept."""
    position = await repo.stream_position(ctx.uow.session, user.id)
    cursor = since or 0
    frames = await render_after(ctx, user.id, cursor, limit)
    if frames and isinstance(frames[0], ReloadFrame):
        if since is not None:
            raise CursorTooOld(
                f"Events after {since} are no longer kept: reload, then continue with "
                f"since={frames[0].data.event_id}.",
                event_id=frames[0].data.event_id,
            )
        cursor = frames.pop(0).data.event_id
    results: list[InteractionFrame] = []
    for frame in frames:  # a page stops before a later gap; the next one reports it
        if not isinstance(frame, InteractionFrame):
            break
        results.append(frame)
    last = results[-1].data.event_id if results else cursor
    return EventsPage(
        count=max(0, position - cursor),
        results=results,
        next_since=last if last < position and (results or last > (since or 0)) else None,
    )
