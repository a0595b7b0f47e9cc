"""All SQL of members' settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from dovecote.core.db import dialect_name, upsert
from dovecote.models import UserSettings

COLUMNS = (
    UserSettings.qa_frequency,
    UserSettings.email_notification_not_qa,
    UserSettings.mobile_notifications_scmty,
    UserSettings.show_toast_notifications,
    UserSettings.toast_notifications_emit_sound,
)


async def settings_of(session: AsyncSession, user_id: int) -> Row[Any] | None:
    query = select(*COLUMNS).where(UserSettings.user_id == user_id)
    return (await session.execute(query)).first()


async def change_settings(
    session: AsyncSession,
    user_id: int,
    defaults: dict[str, int],
    changes: dict[str, int],
    now: datetime,
) -> Row[Any]:
    """Apply `changes` in one statement: a first change stores the defaults beside it."""
    statement = upsert(dialect_name(session), UserSettings).values(
        user_id=user_id, **{**defaults, **changes}, updated_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=[UserSettings.user_id],
        set_={**{name: getattr(statement.excluded, name) for name in changes}, "updated_at": now},
    ).returning(*COLUMNS)
    return (await session.execute(statement)).one()


async def forget_user(session: AsyncSession, user_id: int) -> None:
    await session.execute(delete(UserSettings).where(UserSettings.user_id == user_id))
