"""Reading: the inbox, a thread (which marks it seen), one message, the people to write to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from dovecote.auth.principal import Caller, Principal
from dovecote.core.errors import AuthenticationFailed, NotFound
from dovecote.pm import repository as repo
from dovecote.pm.context import Context
from dovecote.pm.schemas import MessageOut, SnippetOut
from dovecote.pm.shaping import message_out, other_of, snippet_out
from dovecote.users import repository as users_repo
from dovecote.users.repository import Person


@dataclass(frozen=True)
class InboxPage:
    count: int
    results: list[SnippetOut]


async def inbox(ctx: Context, caller: Caller, limit: int, offset: int) -> InboxPage:
    """The caller's inbox page, in one statement that also confirms the caller."""
    rows = await repo.inbox_page_of_caller(ctx.uow.session, caller.user_id, limit, offset)
    if not rows:
        raise AuthenticationFailed()
    first = rows[0]
    caller.confirmed(Principal(caller.user_id, first.me_username, first.me_role))
    page = sorted(
        (r for r in rows if r.thread_id is not None),
        key=lambda r: (r.id, r.thread_id),
        reverse=True,
    )
    users: dict[int, Person] = {}
    for row in page:
        users.update(repo.people_by_id(row.low, row.high))
    return InboxPage(first.me_inbox_count, [snippet_out(ctx, row, users) for row in page])


@dataclass(frozen=True)
class ThreadCursor:
    before_message: int | None = None
    from_message: int | None = None


@dataclass(frozen=True)
class ThreadPage:
    count: int
    results: list[MessageOut]
    older_than: int | None  # `next`: the page of messages before this id
    newer_from: int | None  # `previous`: the page of messages from this id on


async def access_thread(
    ctx: Context,
    user: Principal,
    *,
    thread_id: int | None,
    other_id: int | None,
    lock: bool = False,
) -> repo.Membership | None:
    """The caller's membership of a thread. NotFound for a thread id that is not theirs (the
    same answer whether it exists or not); None for a person they have no thread with yet.
    `lock` holds the member row until commit, for writes that depend on what was read."""
    session = ctx.uow.session
    if thread_id is not None:
        membership = await repo.membership(session, user.id, thread_id, lock=lock)
        if membership is None:
            raise NotFound("No such thread.", code="thread_not_found")
        return membership
    assert other_id is not None
    if other_id == user.id:
        return None
    return await repo.membership_with(session, user.id, other_id, lock=lock)


async def access_thread_of_caller(
    ctx: Context, caller: Caller, *, thread_id: int | None, other_id: int | None
) -> tuple[Principal, repo.CallerMembership | None]:
    """`access_thread` for a caller the database has not confirmed yet: one statement reads
    the member row, confirms the caller and brings both people (repo.membership_of_caller)."""
    found = None
    if other_id != caller.user_id:
        found = await repo.membership_of_caller(
            ctx.uow.session, caller.user_id, thread_id=thread_id, other_id=other_id
        )
    if found is None:
        principal = await caller.principal()  # 401 first, when the caller is gone
        if thread_id is not None:
            raise NotFound("No such thread.", code="thread_not_found")
        return principal, None
    principal = Principal(caller.user_id, found.username, found.role)
    caller.confirmed(principal)
    return principal, found


async def read_thread(
    ctx: Context,
    user: Principal,
    membership: repo.Membership | None,
    cursor: ThreadCursor,
    limit: int,
    offset: int,
    people: dict[int, Person] | None = None,
) -> ThreadPage:
    """One page of a thread, oldest first within the page. Without a cursor it holds the newest
    messages; `before_message` pages backwards, `from_message` forwards. A page that shows the
    newest message marks the thread seen for the caller."""
    if membership is None:
        return ThreadPage(0, [], None, None)
    rows, more = await _page_rows(ctx, membership, cursor, limit, offset)
    if not rows:
        return ThreadPage(membership.message_count, [], None, None)
    await _mark_seen(ctx, user, membership, rows)
    older, newer = await _beyond_page(ctx, membership, cursor, rows, more)
    return ThreadPage(
        membership.message_count,
        await _thread_messages(ctx, user, membership, rows, people),
        rows[0].id if older else None,
        rows[-1].id + 1 if newer else None,
    )


async def _page_rows(
    ctx: Context, membership: repo.Membership, cursor: ThreadCursor, limit: int, offset: int
) -> tuple[list[Row[Any]], bool]:
    """The page's messages oldest first, and whether the direction read has more."""
    rows = await repo.thread_page(
        ctx.uow.session,
        membership.thread_id,
        after_id=membership.cleared_before_id,
        before_id=cursor.before_message,
        from_id=cursor.from_message,
        limit=limit + 1,
        offset=offset,
    )
    more, rows = len(rows) > limit, rows[:limit]
    if cursor.from_message is None:
        rows.reverse()
    return rows, more


async def _beyond_page(
    ctx: Context,
    membership: repo.Membership,
    cursor: ThreadCursor,
    rows: Sequence[Row[Any]],
    more: bool,
) -> tuple[bool, bool]:
    """(older messages exist before the page, newer ones after it)."""
    if cursor.from_message is None:
        return more, rows[-1].id < membership.last_message_id
    older = await repo.has_messages_before(
        ctx.uow.session, membership.thread_id, membership.cleared_before_id, rows[0].id
    )
    return older, more


async def _mark_seen(
    ctx: Context, user: Principal, membership: repo.Membership, rows: Sequence[Row[Any]]
) -> None:
    """Mark read up to the newest message shown, when the page reaches the newest message and
    shows something unread. Never further: a message that arrived meanwhile stays new."""
    newest = rows[-1].id
    if newest < membership.last_message_id or newest <= membership.last_read_id:
        return
    unread_shown = any(r.sender_id != user.id and r.id > membership.last_read_id for r in rows)
    if membership.unread or unread_shown:
        await repo.mark_read(ctx.uow.session, membership.thread_id, user.id, newest)


async def _thread_messages(
    ctx: Context,
    user: Principal,
    membership: repo.Membership,
    rows: Sequence[Row[Any]],
    people: dict[int, Person] | None,
) -> list[MessageOut]:
    other = membership.other_id
    users = people
    if users is None:
        wanted = {user.id, other} if other else {user.id}
        users = await users_repo.get_users(ctx.uow.session, wanted)
    return [
        message_out(
            ctx, r, membership.thread_id, users, other if r.sender_id == user.id else user.id
        )
        for r in rows
    ]


async def read_message(ctx: Context, user: Principal, message_id: int) -> MessageOut:
    session = ctx.uow.session
    row = await repo.visible_message(session, user.id, message_id)
    if row is None:
        raise NotFound("No such message.", code="message_not_found")
    other = other_of(row.user_low_id, row.user_high_id, row.sender_id)
    users = await users_repo.get_users(session, {row.sender_id, other})
    return message_out(ctx, row, row.thread_id, users, other)


async def search_people(
    ctx: Context, user: Principal, term: str, limit: int, offset: int
) -> tuple[int, list[Row[Any]]]:
    """People the user may write to whose name matches `term`: staff may write to anyone,
    everyone else only to their followers."""
    return await users_repo.search_users(
        ctx.uow.session,
        user.id,
        term,
        followers_only=not user.is_staff,
        limit=limit,
        offset=offset,
    )
