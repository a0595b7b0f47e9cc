"""Rules of members' settings: a member reads and changes their own; staff anyone's."""

from __future__ import annotations

from dovecote.auth.principal import Principal
from dovecote.core import clock
from dovecote.core.errors import NotFound
from dovecote.user_settings import repository
from dovecote.user_settings.schemas import DEFAULTS, UserSettingsOut, UserSettingsPatchIn
from dovecote.users import repository as users_repo
from dovecote.users.service import Context


async def access_settings(ctx: Context, caller: Principal, user_id: int) -> None:
    """NotFound unless the caller may see `user_id`'s settings: the same answer whether the
    user exists or not, so nobody learns more here than from the user's public profile."""
    if caller.id == user_id:
        return
    if not caller.is_staff or not await users_repo.user_exists(ctx.uow.session, user_id):
        raise NotFound("No such user settings.", code="user_settings_not_found")


async def settings_of(ctx: Context, caller: Principal, user_id: int) -> UserSettingsOut:
    await access_settings(ctx, caller, user_id)
    row = await repository.settings_of(ctx.uow.session, user_id)
    return UserSettingsOut.model_validate(row) if row is not None else DEFAULTS


async def change_settings(
    ctx: Context, caller: Principal, user_id: int, body: UserSettingsPatchIn
) -> UserSettingsOut:
    await access_settings(ctx, caller, user_id)
    changes = body.model_dump(exclude_none=True)
    if not changes:
        return await settings_of(ctx, caller, user_id)
    row = await repository.change_settings(
        ctx.uow.session, user_id, DEFAULTS.model_dump(), changes, clock.now()
    )
    return UserSettingsOut.model_validate(row)
