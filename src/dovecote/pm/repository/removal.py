"""SQL of deleting: a message for everyone, a thread for one member."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Row,
    case,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from dovecote.models import Message, ThreadMember, ThreadMessage
from dovecote.pm.repository.pages import visible_message

# --- deleting --------------------------------------------------------------------------------


async def message_for_delete(session: AsyncSession, message_id: int) -> Row[Any] | None:
    """The message, locked until commit: two deletes of one message run one after the other,
    and the second sees the status the first left."""
    query = (
        select(Message.id, Message.sender_id, Message.status, Message.created_at)
        .where(Message.id == message_id)
        .with_for_update()
    )
    return (await session.execute(query)).first()


async def message_threads(session: AsyncSession, message_id: int) -> list[tuple[int, int]]:
    """(thread_id, user_id) of every member of every thread listing the message, locked (in
    key order, as sends lock them) so that the state recomputed from the threads' messages
    next includes every send that got there first."""
    rows = await session.execute(
        select(ThreadMember.thread_id, ThreadMember.user_id)
        .join(ThreadMessage, ThreadMessage.thread_id == ThreadMember.thread_id)
        .where(ThreadMessage.message_id == message_id)
        .order_by(ThreadMember.thread_id, ThreadMember.user_id)
        .with_for_update(of=ThreadMember)
    )
    return [(r.thread_id, r.user_id) for r in rows]


async def is_participant(session: AsyncSession, user_id: int, message_id: int) -> bool:
    return await visible_message(session, user_id, message_id) is not None


async def hide_message(session: AsyncSession, message_id: int) -> None:
    await session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(status="hidden", body="", file_id=None)
    )


async def live_messages_of(session: AsyncSession, sender_id: int) -> list[int]:
    """The messages a user sent that nobody has removed yet, oldest first."""
    query = (
        select(Message.id)
        .where(Message.sender_id == sender_id, Message.status == "created")
        .order_by(Message.id)
    )
    return [int(i) for i in await session.scalars(query)]


async def unlist_message(
    session: AsyncSession, message_id: int, thread_ids: Sequence[int]
) -> dict[int, int]:
    """Mark a message deleted, take it out of its threads and recompute the members' state.

    Returns inbox count changes (-1 for each member whose thread became empty for them)."""
    await session.execute(update(Message).where(Message.id == message_id).values(status="deleted"))
    await session.execute(delete(ThreadMessage).where(ThreadMessage.message_id == message_id))
    counted = await _members_seeing(session, message_id, thread_ids)
    await _recompute_members(session, message_id, thread_ids)
    emptied = await _members_with_nothing_visible(session, thread_ids)
    delta: dict[int, int] = {}
    for thread_id, user_id in counted:
        if (thread_id, user_id) in emptied:
            delta[user_id] = delta.get(user_id, 0) - 1
    return delta


async def _members_seeing(
    session: AsyncSession, message_id: int, thread_ids: Sequence[int]
) -> list[tuple[int, int]]:
    """(thread, user) of the members who had not cleared the message away."""
    rows = await session.execute(
        select(ThreadMember.user_id, ThreadMember.thread_id).where(
            ThreadMember.thread_id.in_(thread_ids),
            ThreadMember.cleared_before_id < message_id,
        )
    )
    return [(r.thread_id, r.user_id) for r in rows]


def _latest_listed(*, incoming: bool) -> Any:
    """The newest message still listed in the member's thread (from someone else: incoming)."""
    query = select(ThreadMessage.message_id).where(
        ThreadMessage.thread_id == ThreadMember.thread_id
    )
    if incoming:
        query = query.join(Message, Message.id == ThreadMessage.message_id).where(
            Message.sender_id != ThreadMember.user_id
        )
    return query.order_by(ThreadMessage.message_id.desc()).limit(1).scalar_subquery()


async def _recompute_members(
    session: AsyncSession, message_id: int, thread_ids: Sequence[int]
) -> None:
    """The members' positions from the messages still listed; their counts lose the message."""
    await session.execute(
        update(ThreadMember)
        .where(ThreadMember.thread_id.in_(thread_ids))
        .values(
            last_message_id=func.coalesce(_latest_listed(incoming=False), 0),
            last_incoming_id=func.coalesce(_latest_listed(incoming=True), 0),
            message_count=ThreadMember.message_count
            - case((ThreadMember.cleared_before_id < message_id, 1), else_=0),
        )
    )


async def _members_with_nothing_visible(
    session: AsyncSession, thread_ids: Sequence[int]
) -> set[tuple[int, int]]:
    rows = await session.execute(
        select(ThreadMember.user_id, ThreadMember.thread_id).where(
            ThreadMember.thread_id.in_(thread_ids),
            ThreadMember.last_message_id <= ThreadMember.cleared_before_id,
        )
    )
    return {(r.thread_id, r.user_id) for r in rows}


async def clear_thread(session: AsyncSession, thread_id: int, user_id: int) -> None:
    await session.execute(
        update(ThreadMember)
        .where(ThreadMember.thread_id == thread_id, ThreadMember.user_id == user_id)
        .values(
            cleared_before_id=ThreadMember.last_message_id,
            last_read_id=case(
                (
                    ThreadMember.last_read_id > ThreadMember.last_message_id,
                    ThreadMember.last_read_id,
                ),
                else_=ThreadMember.last_message_id,
            ),
            message_count=0,
        )
    )
