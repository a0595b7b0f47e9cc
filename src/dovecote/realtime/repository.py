"""All SQL of live delivery: a user's events after a cursor, with what a frame shows.

Rendering a page of frames for one user costs three indexed statements whatever its size:
events joined to their messages and threads (with the user's kept unread thread count, one
row), the user's snippets of those threads, and the users named.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dovecote.models import Event, File, Message, Thread, User
from dovecote.pm.repository import MESSAGE_COLUMNS


async def stream_position(session: AsyncSession, user_id: int) -> int:
    """The id of the user's newest event (0 before the first)."""
    value = await session.scalar(select(User.last_event_id).where(User.id == user_id))
    return int(value or 0)


async def kept_after(session: AsyncSession, user_id: int, after: int) -> tuple[int, int | None]:
    """(the user's newest event id, the oldest event still kept after `after`), read in one
    statement so both come from the same snapshot."""
    first = (
        select(func.min(Event.id))
        .where(Event.user_id == user_id, Event.id > after)
        .scalar_subquery()
    )
    row = (
        await session.execute(select(User.last_event_id, first).where(User.id == user_id))
    ).first()
    if row is None:
        return 0, None
    return int(row[0] or 0), None if row[1] is None else int(row[1])


async def events_after(
    session: AsyncSession, user_id: int, after: int, limit: int
) -> list[Row[Any]]:
    """The user's events with id > `after`, oldest first, each with its message and thread,
    and (the same on every row) the user's unread thread count."""
    query = (
        select(
            _unread_threads(user_id).label("unread_threads"),
            Event.id.label("event_id"),
            Event.activity_type,
            Event.thread_id,
            Event.created_at.label("event_at"),
            Thread.user_low_id,
            Thread.user_high_id,
            Thread.group_id,
            *MESSAGE_COLUMNS,
        )
        .select_from(Event)
        .join(Message, Message.id == Event.message_id)
        .join(Thread, Thread.id == Event.thread_id)
        .outerjoin(File, File.id == Message.file_id)
        .where(Event.user_id == user_id, Event.id > after)
        .order_by(Event.id)
        .limit(limit)
    )
    return list(await session.execute(query))


def _unread_threads(user_id: int) -> Any:
    """The user's kept count of threads with something unread (users.unread_threads)."""
    return select(User.unread_threads).where(User.id == user_id).scalar_subquery()
