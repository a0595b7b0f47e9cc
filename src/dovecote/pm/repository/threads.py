"""SQL of threads and of a member's row of a thread (who is in it, what they have read)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Select,
    and_,
    bindparam,
    case,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from dovecote.core.db import dialect_name, upsert
from dovecote.models import Thread, ThreadMember, User
from dovecote.users.repository import Person, person_of

NEW_MESSAGE = 37
DELETED_MESSAGE = 105


def pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def people_by_id(*people: Person | None) -> dict[int, Person]:
    """user id -> person, for those of `people` an outer join found."""
    return {person.id: person for person in people if person is not None}


# --- threads ---------------------------------------------------------------------------------


async def direct_threads(
    session: AsyncSession, sender_id: int, recipient_ids: Sequence[int]
) -> dict[int, int]:
    """recipient id -> id of the one-to-one thread with the sender, where one exists."""
    pairs = [pair(sender_id, r) for r in recipient_ids]
    rows = await session.execute(
        select(Thread.id, Thread.user_low_id, Thread.user_high_id).where(
            tuple_(Thread.user_low_id, Thread.user_high_id).in_(pairs)
        )
    )
    return {(r.user_high_id if r.user_low_id == sender_id else r.user_low_id): r.id for r in rows}


async def create_direct_threads(
    session: AsyncSession, sender_id: int, recipient_ids: Sequence[int], now: datetime
) -> dict[int, int]:
    """Create the missing one-to-one threads (race-safe) and return all of them."""
    values = [
        {"user_low_id": low, "user_high_id": high, "created_at": now}
        for low, high in sorted(pair(sender_id, r) for r in recipient_ids)
    ]
    await session.execute(
        upsert(dialect_name(session), Thread).values(values).on_conflict_do_nothing()
    )
    return await direct_threads(session, sender_id, recipient_ids)


@dataclass(frozen=True)
class Membership:
    thread_id: int
    user_id: int
    other_id: int | None
    last_message_id: int
    last_incoming_id: int
    last_read_id: int
    cleared_before_id: int
    message_count: int

    @property
    def visible(self) -> bool:
        return self.last_message_id > self.cleared_before_id

    @property
    def unread(self) -> bool:
        return self.last_incoming_id > max(self.last_read_id, self.cleared_before_id)


_OTHER_ID = case(
    (Thread.user_low_id == ThreadMember.user_id, Thread.user_high_id),
    else_=Thread.user_low_id,
)
_MEMBERSHIP = (
    ThreadMember.thread_id,
    ThreadMember.user_id,
    _OTHER_ID.label("other_id"),
    ThreadMember.last_message_id,
    ThreadMember.last_incoming_id,
    ThreadMember.last_read_id,
    ThreadMember.cleared_before_id,
    ThreadMember.message_count,
)


@functools.cache
def _membership(by_pair: bool, lock: bool) -> Select[Any]:
    """The member-row statement by thread id or by the pair of people, built once."""
    if by_pair:
        where = and_(
            Thread.user_low_id == bindparam("low"),
            Thread.user_high_id == bindparam("high"),
            ThreadMember.user_id == bindparam("user_id"),
        )
    else:
        where = and_(
            ThreadMember.thread_id == bindparam("thread_id"),
            ThreadMember.user_id == bindparam("user_id"),
        )
    query = select(*_MEMBERSHIP).join(Thread, Thread.id == ThreadMember.thread_id).where(where)
    if lock:  # SQLite has no FOR UPDATE: its single writer already serialises the transaction
        query = query.with_for_update(of=ThreadMember)
    return query


async def _member_row(
    session: AsyncSession, parameters: dict[str, int], lock: bool
) -> Membership | None:
    query = _membership("low" in parameters, lock)
    row = (await session.execute(query, parameters)).first()
    return Membership(*row) if row else None


async def membership(
    session: AsyncSession, user_id: int, thread_id: int, *, lock: bool = False
) -> Membership | None:
    return await _member_row(session, {"thread_id": thread_id, "user_id": user_id}, lock)


async def membership_with(
    session: AsyncSession, user_id: int, other_id: int, *, lock: bool = False
) -> Membership | None:
    low, high = pair(user_id, other_id)
    return await _member_row(session, {"low": low, "high": high, "user_id": user_id}, lock)


@dataclass(frozen=True)
class CallerMembership:
    """A member row read together with the confirmed caller and both people's public columns."""

    membership: Membership
    username: str
    role: str | None
    people: dict[int, Person]


@functools.cache
def _membership_of_caller(by_pair: bool) -> Select[Any]:
    me, other = aliased(User), aliased(User)
    return (
        _membership(by_pair, lock=False)
        .add_columns(me.role.label("me_role"), person_of(me, "me"), person_of(other, "other"))
        .join(
            me,
            and_(me.id == ThreadMember.user_id, me.active),
        )
        .outerjoin(other, other.id == _OTHER_ID)
    )


async def membership_of_caller(
    session: AsyncSession, user_id: int, *, thread_id: int | None, other_id: int | None
) -> CallerMembership | None:
    """`membership` or `membership_with`, in the same statement as the caller's own row (None
    when the caller is gone or inactive, as when there is no such member row) and both
    people's public columns: a thread page needs no principal or users query of its own."""
    if thread_id is not None:
        parameters = {"thread_id": thread_id, "user_id": user_id}
    else:
        assert other_id is not None
        low, high = pair(user_id, other_id)
        parameters = {"low": low, "high": high, "user_id": user_id}
    query = _membership_of_caller("low" in parameters)
    row = (await session.execute(query, parameters)).first()
    if row is None:
        return None
    membership = Membership(*row[: len(_MEMBERSHIP)])
    return CallerMembership(
        membership, row.me.username, row.me_role, people_by_id(row.me, row.other)
    )
