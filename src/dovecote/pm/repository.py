"""All SQL of private messages: threads, per-member state, messages and their events.

Per-member state (`thread_members`) is denormalised so that an inbox page and a thread page
cost a fixed number of indexed statements whatever the data size. Every write here keeps it
consistent inside the caller's transaction; see models.ThreadMember for the invariants.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Row,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import BindParameter

from dovecote.core.db import dialect_name, upsert
from dovecote.models import Event, File, Message, Thread, ThreadMember, ThreadMessage, User
from dovecote.uploads.repository import THUMBNAIL_UUID
from dovecote.users.repository import PUBLIC_COLUMNS

NEW_MESSAGE = 37
DELETED_MESSAGE = 105


def pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


PERSON_COLUMNS = tuple(column.key for column in PUBLIC_COLUMNS)
_low, _high, _me = aliased(User), aliased(User), aliased(User)


def people_of(row: Row[Any], *prefixes: str) -> dict[int, dict[str, Any]]:
    """user id -> public columns, for the people a row carries under `prefix` + column."""
    people = {}
    for prefix in prefixes:
        if getattr(row, prefix + "id") is not None:
            person = {c: getattr(row, prefix + c) for c in PERSON_COLUMNS}
            people[person["id"]] = person
    return people


def _person(alias: Any, prefix: str) -> list[Any]:
    return [getattr(alias, key).label(prefix + key) for key in PERSON_COLUMNS]


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
    people: dict[int, dict[str, Any]]


@functools.cache
def _membership_of_caller(by_pair: bool) -> Select[Any]:
    me, other = aliased(User), aliased(User)
    return (
        _membership(by_pair, lock=False)
        .add_columns(me.role.label("me_role"), *_person(me, "me_"), *_person(other, "other_"))
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
        membership, row.me_username, row.me_role, people_of(row, "me_", "other_")
    )


# --- sending ---------------------------------------------------------------------------------


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
    statement = upsert(dialect_name(session), ThreadMember).values(values)
    old, new = ThreadMember, statement.excluded
    # On PostgreSQL ids come from a sequence, so concurrent sends can reach this row out of id
    # order: every position only moves forward, and the message counts for the member only if
    # it is newer than what they deleted.
    seen_by_member = new.last_message_id > old.cleared_before_id
    was_hidden = old.last_message_id <= old.cleared_before_id
    statement = statement.on_conflict_do_update(
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
    rows = await session.execute(statement)
    revealed: dict[int, int] = {}
    for row in rows:
        if row.visible_since_id == message_id:
            revealed[row.user_id] = revealed.get(row.user_id, 0) + 1
    return revealed


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


async def change_inbox_counts(session: AsyncSession, inbox_delta: dict[int, int]) -> None:
    for user_id, d in inbox_delta.items():
        if d:
            await session.execute(
                update(User).where(User.id == user_id).values(inbox_count=User.inbox_count + d)
            )


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
            *_person(_low, "low_"),
            *_person(_high, "high_"),
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
    both people of each thread (columns `low_*` and `high_*`). Rows come in no particular
    order: sorting 20 rows in Python keeps the page's own index order the only sort."""
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


async def unlist_message(
    session: AsyncSession, message_id: int, thread_ids: Sequence[int]
) -> dict[int, int]:
    """Mark a message deleted, take it out of its threads and recompute the members' state.

    Returns inbox count changes (-1 for each member whose thread became empty for them)."""
    await session.execute(update(Message).where(Message.id == message_id).values(status="deleted"))
    await session.execute(delete(ThreadMessage).where(ThreadMessage.message_id == message_id))
    before = await session.execute(
        select(ThreadMember.user_id, ThreadMember.thread_id).where(
            ThreadMember.thread_id.in_(thread_ids),
            ThreadMember.cleared_before_id < message_id,
        )
    )
    counted = [(r.thread_id, r.user_id) for r in before]
    latest = (
        select(ThreadMessage.message_id)
        .where(ThreadMessage.thread_id == ThreadMember.thread_id)
        .order_by(ThreadMessage.message_id.desc())
        .limit(1)
        .scalar_subquery()
    )
    latest_incoming = (
        select(ThreadMessage.message_id)
        .join(Message, Message.id == ThreadMessage.message_id)
        .where(
            ThreadMessage.thread_id == ThreadMember.thread_id,
            Message.sender_id != ThreadMember.user_id,
        )
        .order_by(ThreadMessage.message_id.desc())
        .limit(1)
        .scalar_subquery()
    )
    await session.execute(
        update(ThreadMember)
        .where(ThreadMember.thread_id.in_(thread_ids))
        .values(
            last_message_id=func.coalesce(latest, 0),
            last_incoming_id=func.coalesce(latest_incoming, 0),
            message_count=ThreadMember.message_count
            - case((ThreadMember.cleared_before_id < message_id, 1), else_=0),
        )
    )
    now_hidden = await session.execute(
        select(ThreadMember.user_id, ThreadMember.thread_id).where(
            ThreadMember.thread_id.in_(thread_ids),
            ThreadMember.last_message_id <= ThreadMember.cleared_before_id,
        )
    )
    delta: dict[int, int] = {}
    gone = {(r.thread_id, r.user_id) for r in now_hidden}
    for thread_id, user_id in counted:
        if (thread_id, user_id) in gone:
            delta[user_id] = delta.get(user_id, 0) - 1
    return delta


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


async def events_since(
    session: AsyncSession, user_id: int, since: int, limit: int
) -> list[Row[Any]]:
    query = (
        select(Event.id, Event.activity_type, Event.thread_id, Event.message_id, Event.created_at)
        .where(Event.user_id == user_id, Event.id > since)
        .order_by(Event.id)
        .limit(limit)
    )
    return list(await session.execute(query))
