"""SQL of a send's and a delete's writes: message, listing, member rows, counters, events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    and_,
    case,
    insert,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from dovecote.core.db import dialect_name, upsert
from dovecote.models import Event, Message, ThreadMember, ThreadMessage, User


def _greatest(a: Any, b: Any) -> Any:
    return case((a > b, a), else_=b)


async def insert_message(
    session: AsyncSession, sender_id: int, body: str, file_id: int | None, now: datetime
) -> int:
    result = await session.execute(
        insert(Message)
        .values(sender_id=sender_id, body=body, status="created", file_id=file_id, created_at=now)
        .returning(Message.id)
    )
    return int(result.scalar_one())


async def list_in_threads(
    session: AsyncSession, message_id: int, thread_ids: Sequence[int]
) -> None:
    await session.execute(
        insert(ThreadMessage),
        [{"thread_id": t, "message_id": message_id} for t in sorted(thread_ids)],
    )


async def advance_members(
    session: AsyncSession, message_id: int, sender_id: int, members: Sequence[tuple[int, int]]
) -> dict[int, int]:
    """Record a new message in each (thread, user) member row, creating rows on first contact.

    The sender has read their own message; everyone else has something new. Returns the ids
    user id -> number of threads that became visible to them (new, or revived after they
    deleted it): their inbox count grows by that much.
    """
    values = [
        {
            "thread_id": thread_id,
            "user_id": user_id,
            "last_message_id": message_id,
            "last_incoming_id": 0 if user_id == sender_id else message_id,
            "last_read_id": message_id if user_id == sender_id else 0,
            "cleared_before_id": 0,
            "visible_since_id": message_id,
            "message_count": 1,
        }
        for thread_id, user_id in sorted(members)
    ]
    rows = await session.execute(_advance_members(dialect_name(session), values))
    revealed: dict[int, int] = {}
    for row in rows:
        if row.visible_since_id == message_id:
            revealed[row.user_id] = revealed.get(row.user_id, 0) + 1
    return revealed


def _advance_members(dialect: str, values: list[dict[str, int]]) -> Any:
    """Insert the member rows, or move existing ones forward.

    On PostgreSQL ids come from a sequence, so concurrent sends can reach a row out of id
    order: every position only moves forward, and the message counts for the member only if
    it is newer than what they deleted."""
    statement = upsert(dialect, ThreadMember).values(values)
    old, new = ThreadMember, statement.excluded
    seen_by_member = new.last_message_id > old.cleared_before_id
    was_hidden = old.last_message_id <= old.cleared_before_id
    return statement.on_conflict_do_update(
        index_elements=[ThreadMember.thread_id, ThreadMember.user_id],
        set_={
            "last_message_id": _greatest(new.last_message_id, old.last_message_id),
            "last_incoming_id": _greatest(new.last_incoming_id, old.last_incoming_id),
            "last_read_id": _greatest(new.last_read_id, old.last_read_id),
            "visible_since_id": case(
                (and_(was_hidden, seen_by_member), new.visible_since_id),
                else_=old.visible_since_id,
            ),
            "message_count": old.message_count + case((seen_by_member, 1), else_=0),
        },
    ).returning(ThreadMember.user_id, ThreadMember.visible_since_id)


async def append_events(
    session: AsyncSession,
    activity_type: int,
    message_id: int,
    deliveries: Sequence[tuple[int, int]],
    inbox_delta: dict[int, int],
    now: datetime,
) -> list[tuple[int, int, int]]:
    """Append one event per (user, thread) delivery, numbering each user's events gap-free
    under the user row's lock, and apply inbox count changes in the same statement.

    Returns (user_id, event_id, thread_id) triples."""
    per_user: dict[int, list[int]] = {}
    for user_id, thread_id in deliveries:
        per_user.setdefault(user_id, []).append(thread_id)
    stamped = await _number_events(session, per_user, inbox_delta)
    await session.execute(
        insert(Event),
        [
            {
                "user_id": u,
                "id": e,
                "activity_type": activity_type,
                "thread_id": t,
                "message_id": message_id,
                "created_at": now,
            }
            for u, e, t in stamped
        ],
    )
    return stamped


async def _number_events(
    session: AsyncSession, per_user: dict[int, list[int]], inbox_delta: dict[int, int]
) -> list[tuple[int, int, int]]:
    """Bump each user's `last_event_id` by their number of threads (and their inbox count by
    its change) and number their events up to it: (user_id, event_id, thread_id)."""
    users = sorted(per_user)
    values: dict[str, Any] = {
        "last_event_id": User.last_event_id
        + case(*((User.id == u, len(per_user[u])) for u in users), else_=0)
    }
    changed = [(User.id == u, d) for u, d in inbox_delta.items() if d]
    if changed:
        values["inbox_count"] = User.inbox_count + case(*changed, else_=0)
    rows = await session.execute(
        update(User).where(User.id.in_(users)).values(values).returning(User.id, User.last_event_id)
    )
    stamped: list[tuple[int, int, int]] = []
    for row in rows:
        threads = per_user[row.id]
        first = row.last_event_id - len(threads) + 1
        stamped.extend((row.id, first + i, t) for i, t in enumerate(sorted(threads)))
    return stamped


async def change_inbox_counts(session: AsyncSession, inbox_delta: dict[int, int]) -> None:
    for user_id, d in inbox_delta.items():
        if d:
            await session.execute(
                update(User).where(User.id == user_id).values(inbox_count=User.inbox_count + d)
            )
