"""Deleting: a message (by its sender, for everyone) and a thread (for one member)."""

from __future__ import annotations

from datetime import datetime, timedelta

from dovecote.auth.principal import Principal
from dovecote.core import clock
from dovecote.core.errors import NotFound, PermissionDenied
from dovecote.pm import repository as repo
from dovecote.pm.context import Context, publish_after_commit
from dovecote.pm.reading import access_thread


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
    now = clock.now()
    window = timedelta(seconds=ctx.settings.pm_delete_window_seconds)
    await _remove(ctx, message_id, now, unlist=now - message.created_at < window)


async def hide_messages_of(ctx: Context, sender_id: int) -> int:
    """A hard delete of the sender: every message of theirs not yet removed becomes `hidden`
    (the placeholder in every thread, its file detached), with the deleted-message event each
    member's client expects, as a late delete. Returns how many."""
    now = clock.now()
    message_ids = await repo.live_messages_of(ctx.uow.session, sender_id)
    for message_id in message_ids:
        await _remove(ctx, message_id, now, unlist=False)
    return len(message_ids)


async def _remove(ctx: Context, message_id: int, now: datetime, *, unlist: bool) -> None:
    session = ctx.uow.session
    members = await repo.message_threads(session, message_id)
    if unlist:
        thread_ids = sorted({t for t, _ in members})
        delta = await repo.unlist_message(session, message_id, thread_ids)
    else:
        await repo.hide_message(session, message_id)
        delta = {}
    deliveries = [(u, t) for t, u in members]
    stamped = await repo.append_events(
        session, repo.DELETED_MESSAGE, message_id, deliveries, delta, now
    )
    publish_after_commit(ctx, repo.DELETED_MESSAGE, message_id, stamped)


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
