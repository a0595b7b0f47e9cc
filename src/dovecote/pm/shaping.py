"""Rows shaped for the wire: the one place a message or a snippet gets its REST and live form
(pm's pages and realtime's frames both use it, so they agree)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from dovecote.core.settings import Settings
from dovecote.pm.context import Context
from dovecote.pm.schemas import MessageOut, SnippetOut
from dovecote.users.repository import Person
from dovecote.users.service import user_out


def text_of(row: Any, settings: Settings) -> str:
    return settings.pm_deleted_placeholder if row.status == "hidden" else str(row.body)


def other_of(low: int, high: int, user_id: int) -> int:
    """The other person of a one-to-one thread."""
    return high if user_id == low else low


def message_out(
    ctx: Context, row: Any, thread_id: int, users: dict[int, Person], receiver_id: int | None
) -> MessageOut:
    """A message row (or a just-written `sending.SentMessage`) shaped for the wire; `users`
    maps ids to the people it may name."""
    sender = users.get(row.sender_id)
    receiver = users.get(receiver_id) if receiver_id is not None else None
    return MessageOut(
        id=row.id,
        sender_id=row.sender_id,
        sender=user_out(sender) if sender else None,
        message=text_of(row, ctx.settings),
        created_at=row.created_at,
        status=row.status,
        file=ctx.file_links(row) if row.file_id is not None else None,
        thread_id=thread_id,
        receiver=user_out(receiver) if receiver else None,
    )


def snippet_out(ctx: Context, row: Row[Any], users: dict[int, Person]) -> SnippetOut:
    """The inbox snippet of one thread row (columns as in repository._visible_snippets)."""
    sender = users.get(row.sender_id)
    receiver = users.get(other_of(row.user_low_id, row.user_high_id, row.sender_id))
    headline = text_of(row, ctx.settings)
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
