"""SQL of the pages: an inbox page, a thread page, one message; marking a thread read."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    Row,
    Select,
    and_,
    bindparam,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import BindParameter

from dovecote.models import File, Message, Thread, ThreadMember, ThreadMessage, User
from dovecote.uploads.repository import THUMBNAIL_UUID
from dovecote.users.repository import person_of

_low, _high, _me = aliased(User), aliased(User), aliased(User)

# --- reading ---------------------------------------------------------------------------------

MESSAGE_COLUMNS = (
    Message.id,
    Message.sender_id,
    Message.body,
    Message.status,
    Message.created_at,
    Message.file_id,
    File.uuid.label("file_uuid"),
    File.filename.label("file_name"),
    File.filesize.label("file_size"),
    File.mimetype.label("file_mimetype"),
    File.duration.label("file_duration"),
    THUMBNAIL_UUID,
)


def _visible_snippets(user_id: int | BindParameter[int]) -> Select[Any]:
    """The user's visible threads, each with its latest visible message: inbox rows."""
    return (
        select(
            ThreadMember.thread_id,
            ThreadMember.last_incoming_id,
            ThreadMember.last_read_id,
            ThreadMember.cleared_before_id,
            Thread.user_low_id,
            Thread.user_high_id,
            Thread.group_id,
            *MESSAGE_COLUMNS,
        )
        .join(Thread, Thread.id == ThreadMember.thread_id)
        .join(Message, Message.id == ThreadMember.last_message_id)
        .outerjoin(File, File.id == Message.file_id)
        .where(
            ThreadMember.user_id == user_id,
            ThreadMember.last_message_id > ThreadMember.cleared_before_id,
        )
    )


def _inbox_page_of_caller() -> Select[Any]:
    me: BindParameter[int] = bindparam("user_id")
    page = (
        _visible_snippets(me)
        .order_by(ThreadMember.last_message_id.desc(), ThreadMember.thread_id.desc())
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
        .subquery()
    )
    return (
        select(
            _me.inbox_count.label("me_inbox_count"),
            _me.username.label("me_username"),
            _me.role.label("me_role"),
            page,
            person_of(_low, "low"),
            person_of(_high, "high"),
        )
        .select_from(_me)
        .outerjoin(page, true())
        .outerjoin(_low, _low.id == page.c.user_low_id)
        .outerjoin(_high, _high.id == page.c.user_high_id)
        .where(_me.id == me, _me.active)
    )


# Built once: constructing a statement of this size costs more CPU than running it.
_INBOX_PAGE_OF_CALLER = _inbox_page_of_caller()


async def inbox_page_of_caller(
    session: AsyncSession, user_id: int, limit: int, offset: int
) -> list[Row[Any]]:
    """One statement for a whole inbox page: the caller (only if still active: no rows
    otherwise), their inbox count, the page's rows (none: one row with thread_id NULL) and
    both people of each thread (`low` and `high`, each a `Person` or None). Rows come in no
    particular order: sorting 20 rows in Python keeps the page's own index order the only
    sort."""
    parameters = {"user_id": user_id, "limit": limit, "offset": offset}
    return list(await session.execute(_INBOX_PAGE_OF_CALLER, parameters))


async def snippets_of(
    session: AsyncSession, user_id: int, thread_ids: Iterable[int]
) -> dict[int, Row[Any]]:
    """thread id -> the user's inbox row of that thread, for those of them visible to the user."""
    wanted = set(thread_ids)
    if not wanted:
        return {}
    query = _visible_snippets(user_id).where(ThreadMember.thread_id.in_(wanted))
    return {row.thread_id: row for row in await session.execute(query)}


@functools.cache
def _thread_page(before: bool, from_: bool) -> Select[Any]:
    """The page statement for each kind of cursor, built once (with bound parameters)."""
    conditions = [
        ThreadMessage.thread_id == bindparam("thread_id"),
        ThreadMessage.message_id > bindparam("after_id"),
    ]
    if before:
        conditions.append(ThreadMessage.message_id < bindparam("before_id"))
    if from_:
        conditions.append(ThreadMessage.message_id >= bindparam("from_id"))
    order = ThreadMessage.message_id.asc() if from_ else ThreadMessage.message_id.desc()
    return (
        select(*MESSAGE_COLUMNS)
        .select_from(ThreadMessage)
        .join(Message, Message.id == ThreadMessage.message_id)
        .outerjoin(File, File.id == Message.file_id)
        .where(*conditions)
        .order_by(order)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


async def thread_page(
    session: AsyncSession,
    thread_id: int,
    *,
    after_id: int,
    before_id: int | None,
    from_id: int | None,
    limit: int,
    offset: int,
) -> list[Row[Any]]:
    """Messages of a thread with `after_id < id`, newest first (or oldest first from `from_id`)."""
    parameters = {"thread_id": thread_id, "after_id": after_id, "limit": limit, "offset": offset}
    if before_id is not None:
        parameters["before_id"] = before_id
    if from_id is not None:
        parameters["from_id"] = from_id
    query = _thread_page(before_id is not None, from_id is not None)
    return list(await session.execute(query, parameters))


async def has_messages_before(
    session: AsyncSession, thread_id: int, after_id: int, before_id: int
) -> bool:
    query = select(ThreadMessage.message_id).where(
        ThreadMessage.thread_id == thread_id,
        ThreadMessage.message_id > after_id,
        ThreadMessage.message_id < before_id,
    )
    return (await session.execute(query.limit(1))).first() is not None


async def mark_read(session: AsyncSession, thread_id: int, user_id: int, up_to: int) -> None:
    """The member has read every message up to `up_to` (never moves backwards)."""
    await session.execute(
        update(ThreadMember)
        .where(
            ThreadMember.thread_id == thread_id,
            ThreadMember.user_id == user_id,
            ThreadMember.last_read_id < up_to,
        )
        .values(last_read_id=up_to)
    )


async def visible_message(session: AsyncSession, user_id: int, message_id: int) -> Row[Any] | None:
    """The message with the thread through which `user_id` sees it, if they see it at all."""
    query = (
        select(*MESSAGE_COLUMNS, ThreadMessage.thread_id, Thread.user_low_id, Thread.user_high_id)
        .select_from(ThreadMessage)
        .join(
            ThreadMember,
            and_(
                ThreadMember.thread_id == ThreadMessage.thread_id,
                ThreadMember.user_id == user_id,
            ),
        )
        .join(Thread, Thread.id == ThreadMessage.thread_id)
        .join(Message, Message.id == ThreadMessage.message_id)
        .outerjoin(File, File.id == Message.file_id)
        .where(
            ThreadMessage.message_id == message_id,
            ThreadMessage.message_id > ThreadMember.cleared_before_id,
        )
        .order_by(ThreadMessage.thread_id)
        .limit(1)
    )
    return (await session.execute(query)).first()
