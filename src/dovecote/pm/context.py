"""What a private-message operation needs besides its arguments, and its live events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from dovecote.core.broker import LiveEvent
from dovecote.core.db import UnitOfWork
from dovecote.core.settings import Settings
from dovecote.uploads.schemas import FileOut

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


def publish_after_commit(
    ctx: Context,
    activity_type: int,
    message_id: int,
    stamped: Sequence[tuple[int, int, int]],
    sent_by: int | None = None,
) -> None:
    """Queue the live events of (user, event id, thread) triples until the commit; the
    sender's event names the connection the send came from, so that socket skips it."""
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
