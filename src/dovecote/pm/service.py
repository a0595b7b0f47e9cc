"""The rules of private messaging: who may send, what each member sees, what deleting does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Row

from dovecote.auth.principal import Caller, Principal
from dovecote.core import clock
from dovecote.core.db import UnitOfWork
from dovecote.core.errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from dovecote.core.settings import Settings
from dovecote.idempotency import service as idempotency
from dovecote.pm import one_statement
from dovecote.pm import repository as repo
from dovecote.pm.schemas import FileOut, MessageOut, SendMessageIn, SnippetOut
from dovecote.realtime.broker import LiveEvent
from dovecote.uploads import access as uploads
from dovecote.users import repository as users_repo
from dovecote.users.service import message_refusal, user_out

FileLinks = Callable[[Row[Any]], FileOut | None]


def no_files(_row: Row[Any]) -> FileOut | None:
    return None


@dataclass(frozen=True)
class Context:
    """What a PM operation needs besides its arguments."""

    uow: UnitOfWork
    settings: Settings
    publish: Callable[[list[LiveEvent]], Any]
    file_links: FileLinks = no_files
    # The page (X-Dovecote-Connection) a send comes from: its socket skips the sender's frame.
    from_connection: str | None = None


# --- shaping ---------------------------------------------------------------------------------


def _text(row: Row[Any], settings: Settings) -> str:
    return settings.pm_deleted_placeholder if row.status == "hidden" else str(row.body)


def message_out(
    ctx: Context, row: Any, thread_id: int, users: dict[int, Any], receiver_id: int | None
) -> MessageOut:
    """A message row (or `_MessageRow`) shaped for the wire; `users` maps ids to rows or to
    column mappings of the users' public columns."""
    sender = users.get(row.sender_id)
    receiver = users.get(receiver_id) if receiver_id is not None else None
    return MessageOut(
        id=row.id,
        sender_id=row.sender_id,
        sender=user_out(sender) if sender else None,
        message=_text(row, ctx.settings),
        created_at=row.created_at,
        status=row.status,
        file=ctx.file_links(row) if row.file_id is not None else None,
        thread_id=thread_id,
        receiver=user_out(receiver) if receiver else None,
    )


def _other(low: int, high: int, user_id: int) -> int:
    return high if user_id == low else low


# --- sending ---------------------------------------------------------------------------------


def _validate(settings: Settings, body: SendMessageIn) -> tuple[list[int], str]:
    if body.group is not None:
        raise InvalidInput.field(
            "group", "groups_disabled", "Group conversations are not enabled on this server."
        )
    if not body.recipients:
        raise InvalidInput.field("recipients", "required", "Name at least one recipient.")
    if len(body.recipients) > settings.pm_max_recipients:
        raise InvalidInput.field(
            "recipients",
            "max_length",
            f"A message may go to at most {settings.pm_max_recipients} recipients.",
        )
    text = body.message or ""
    if not text.strip() and not body.file_uuid:
        raise InvalidInput.field("message", "required", "Send a message or a file.")
    if len(text) > settings.pm_message_max_length:
        raise InvalidInput.field(
            "message",
            "max_length",
            f"A message may hold at most {settings.pm_message_max_length} characters.",
        )
    return body.recipients, text


async def send_message(ctx: Context, sender: Principal, body: SendMessageIn) -> list[MessageOut]:
    """Store one message in the thread with each recipient; one answer per recipient."""
    recipients, text = _validate(ctx.settings, body)
    session = ctx.uow.session
    attachment = (
        await uploads.attachment_for(session, ctx.settings, sender.id, body.file_uuid)
        if body.file_uuid
        else None
    )
    facts = await users_repo.recipient_facts(session, sender.id, recipients)
    for recipient in recipients:
        refusal = message_refusal(sender, recipient, facts.get(recipient))
        if refusal is not None:
            raise refusal

    now = clock.now()
    threads = await repo.direct_threads(session, sender.id, recipients)
    if len(threads) < len(recipients):
        threads = await repo.create_direct_threads(session, sender.id, recipients, now)
    file_id = attachment.file_id if attachment else None
    message_id = await repo.insert_message(session, sender.id, text, file_id, now)
    if attachment:
        await uploads.attach(session, attachment)
    await repo.list_in_threads(session, message_id, list(threads.values()))
    deliveries = [(sender.id, t) for t in threads.values()] + [(r, t) for r, t in threads.items()]
    revealed = await repo.advance_members(
        session, message_id, sender.id, [(t, u) for u, t in deliveries]
    )
    stamped = await repo.append_events(
        session, repo.NEW_MESSAGE, message_id, deliveries, revealed, now
    )
    _publish_after_commit(ctx, repo.NEW_MESSAGE, message_id, stamped, sent_by=sender.id)

    users = await users_repo.get_users(session, [sender.id, *recipients])
    row = _MessageRow(message_id, sender.id, text, "created", now, file_id, attachment)
    return [message_out(ctx, row, threads[r], users, r) for r in recipients]


async def send_in_one_statement(
    ctx: Context, caller: Caller, body: SendMessageIn
) -> list[MessageOut] | None:
    """PostgreSQL: a plain text send (no file, no idempotency key) as one self-committing
    statement that also confirms the caller (pm.one_statement). None when the thread does not
    exist yet: the general path creates it."""
    recipients, text = _validate(ctx.settings, body)
    now = clock.now()
    outcome = await one_statement.send(
        ctx.uow.database, caller.user_id, recipients, text, now, repo.NEW_MESSAGE
    )
    if not outcome.sender_ok:
        raise AuthenticationFailed()
    sender = Principal(caller.user_id, str(outcome.sender_username), outcome.sender_role)
    caller.confirmed(sender)
    if outcome.message_id is None:
        for row in outcome.rows:
            refusal = message_refusal(sender, row["recipient_id"], outcome.fact(row))
            if refusal is not None:
                raise refusal
        return None
    message_id = outcome.message_id
    stamped = [(caller.user_id, r["sender_event_id"], r["thread_id"]) for r in outcome.rows]
    stamped += [(r["recipient_id"], r["recipient_event_id"], r["thread_id"]) for r in outcome.rows]
    _publish_after_commit(ctx, repo.NEW_MESSAGE, message_id, stamped, sent_by=caller.user_id)
    row = _MessageRow(message_id, caller.user_id, text, "created", now, None)
    users = {caller.user_id: outcome.user(outcome.rows[0], "s_")}
    users.update({r["recipient_id"]: outcome.user(r, "r_") for r in outcome.rows})
    return [message_out(ctx, row, r["thread_id"], users, r["recipient_id"]) for r in outcome.rows]


async def send_as(
    ctx: Context, caller: Caller, body: SendMessageIn, key: str | None
) -> list[MessageOut]:
    """A send by a caller not yet confirmed: on PostgreSQL a plain text send into existing
    threads is one statement; everything else takes the general path."""
    if ctx.uow.dialect == "postgresql" and key is None and not body.file_uuid:
        sent = await send_in_one_statement(ctx, caller, body)
        if sent is not None:
            return sent
    return await send_message_once(ctx, await caller.principal(), body, key)


async def send_message_once(
    ctx: Context, sender: Principal, body: SendMessageIn, key: str | None
) -> list[MessageOut]:
    """`send_message`, exactly once per idempotency key: a retry replays the first answer."""
    if key is None:
        return await send_message(ctx, sender, body)
    session = ctx.uow.session
    ttl = timedelta(seconds=ctx.settings.idempotency_ttl_seconds)
    request_hash = idempotency.fingerprint(body.model_dump(exclude={"client_message_id"}))
    claim = await idempotency.claim(session, sender.id, key, request_hash, ttl)
    if claim.replay is not None:
        return [MessageOut.model_validate(item) for item in claim.replay]
    messages = await send_message(ctx, sender, body)
    answer = [m.model_dump(mode="json") for m in messages]
    await idempotency.record(session, sender.id, key, messages[0].id, answer)
    return messages


@dataclass(frozen=True)
class _MessageRow:
    """A just-written message, shaped like a repository row (file columns from the upload)."""

    id: int
    sender_id: int
    body: str
    status: str
    created_at: Any
    file_id: int | None
    attachment: uploads.Attachment | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("file_"):
            return getattr(self.attachment, name, None)
        raise AttributeError(name)


def _publish_after_commit(
    ctx: Context,
    activity_type: int,
    message_id: int,
    stamped: Sequence[tuple[int, int, int]],
    sent_by: int | None = None,
) -> None:
    events = [
        LiveEvent(
            user_id=u,
            event_id=e,
            activity_type=activity_type,
            thread_id=t,
            message_id=message_id,
            from_connection=ctx.from_connection if u == sent_by else None,
        )
        for u, e, t in stamped
    ]

    async def publish() -> None:
        await ctx.publish(events)

    ctx.uow.after_commit(publish)


# --- reading ---------------------------------------------------------------------------------


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
    users: dict[int, Any] = {}
    for row in page:
        users.update(repo.people_of(row, "low_", "high_"))
    return InboxPage(
        first.me_inbox_count, [_snippet(ctx, row, caller.user_id, users) for row in page]
    )


def _snippet(ctx: Context, row: Row[Any], user_id: int, users: dict[int, Any]) -> SnippetOut:
    sender = users.get(row.sender_id)
    receiver = users.get(_other(row.user_low_id, row.user_high_id, row.sender_id))
    headline = _text(row, ctx.settings)
    if not headline and row.file_id is not None:
        headline = row.file_name or ""
    unread = row.last_incoming_id > max(row.last_read_id, row.cleared_before_id)
    return SnippetOut(
        id=row.thread_id,
        headline=headline,
        sender=user_out(sender) if sender else None,
        receiver=user_out(receiver) if receiver else None,
        created_at=row.created_at,
        last_message_at=row.created_at,
        thread_status="new" if unread else "seen",
    )


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
    people: dict[int, Any] | None = None,
) -> ThreadPage:
    """One page of a thread, oldest first within the page. Without a cursor it holds the newest
    messages; `before_message` pages backwards, `from_message` forwards. A page that shows the
    newest message marks the thread seen for the caller."""
    if membership is None:
        return ThreadPage(0, [], None, None)
    session = ctx.uow.session
    ascending = cursor.from_message is not None
    rows = await repo.thread_page(
        session,
        membership.thread_id,
        after_id=membership.cleared_before_id,
        before_id=cursor.before_message,
        from_id=cursor.from_message,
        limit=limit + 1,
        offset=offset,
    )
    more, rows = len(rows) > limit, rows[:limit]
    if not ascending:
        rows.reverse()
    if not rows:
        return ThreadPage(membership.message_count, [], None, None)
    await _mark_seen(ctx, user, membership, rows)
    if ascending:
        older = await repo.has_messages_before(
            session, membership.thread_id, membership.cleared_before_id, rows[0].id
        )
        newer = more
    else:
        older, newer = more, rows[-1].id < membership.last_message_id
    return ThreadPage(
        membership.message_count,
        await _thread_messages(ctx, user, membership, rows, people),
        rows[0].id if older else None,
        rows[-1].id + 1 if newer else None,
    )


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
    people: dict[int, Any] | None,
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
    other = _other(row.user_low_id, row.user_high_id, row.sender_id)
    users = await users_repo.get_users(session, {row.sender_id, other})
    return message_out(ctx, row, row.thread_id, users, other)


# --- deleting --------------------------------------------------------------------------------


async def delete_message(ctx: Context, user: Principal, message_id: int) -> None:
    """Within the delete window a message is `deleted` (gone everywhere); after it, `hidden`
    (listed with the placeholder, its file detached). Only the sender may delete."""
    session = ctx.uow.session
    message = await repo.message_for_delete(session, message_id)
    if message is None or message.sender_id != user.id:
        if message is not None and await repo.is_participant(session, user.id, message_id):
            raise PermissionDenied("Only the sender may delete a message.", code="not_sender")
        raise NotFound("No such message.", code="message_not_found")
    if message.status != "created":
        return  # deleting again changes nothing
    members = await repo.message_threads(session, message_id)
    thread_ids = sorted({t for t, _ in members})
    now = clock.now()
    if now - message.created_at < timedelta(seconds=ctx.settings.pm_delete_window_seconds):
        delta = await repo.unlist_message(session, message_id, thread_ids)
    else:
        await repo.hide_message(session, message_id)
        delta = {}
    deliveries = [(u, t) for t, u in members]
    stamped = await repo.append_events(
        session, repo.DELETED_MESSAGE, message_id, deliveries, delta, now
    )
    _publish_after_commit(ctx, repo.DELETED_MESSAGE, message_id, stamped)


async def delete_thread_for(
    ctx: Context, user: Principal, *, thread_id: int | None, other_id: int | None
) -> None:
    """Hide the thread and its history from this member only; a later message revives it.
    Deleting an already deleted thread changes nothing."""
    membership = await access_thread(ctx, user, thread_id=thread_id, other_id=other_id, lock=True)
    if membership is None:
        raise NotFound("You have no thread with this user.", code="thread_not_found")
    session = ctx.uow.session
    await repo.clear_thread(session, membership.thread_id, user.id)
    if membership.visible:
        await repo.change_inbox_counts(session, {user.id: -1})


# --- live frames (used by realtime/) ---------------------------------------------------------


def snippet_out(
    ctx: Context, row: Row[Any], user_id: int, users: dict[int, Row[Any]]
) -> SnippetOut:
    """The inbox snippet of one thread row (columns as in repository._visible_snippets)."""
    return _snippet(ctx, row, user_id, users)
