"""`/api/v2/user/{id}/settings/`: a member's settings (SelfCommunity's UserSettings). Thin."""

from __future__ import annotations

from fastapi import Request

from dovecote.auth.dependencies import CurrentUser
from dovecote.core.deps import ObjectId
from dovecote.core.openapi import body_of, errors
from dovecote.core.requests import read_body
from dovecote.core.routing import Router
from dovecote.user_settings import service
from dovecote.user_settings.schemas import UserSettingsOut, UserSettingsPatchIn
from dovecote.users.router import Ctx  # the users package's Context: these are a user's

router = Router(prefix="/api/v2", tags=["users"])


@router.get(
    "/user/{id:int}/settings/",
    response_model=UserSettingsOut,
    responses=errors(400, 401, 404),
    summary="A member's settings (the member or staff)",
)
async def read_settings(id: ObjectId, ctx: Ctx, user: CurrentUser) -> UserSettingsOut:
    return await service.settings_of(ctx, user, id)


@router.patch(
    "/user/{id:int}/settings/",
    response_model=UserSettingsOut,
    responses=errors(400, 401, 404),
    # Not required: an empty PATCH changes nothing, which is an answer, not an error.
    openapi_extra=body_of(
        UserSettingsPatchIn,
        "application/json",
        "application/x-www-form-urlencoded",
        required=False,
    ),
    summary="Change a member's settings (the member or staff)",
)
async def change_settings(
    id: ObjectId, request: Request, ctx: Ctx, user: CurrentUser
) -> UserSettingsOut:
    body = await read_body(request, UserSettingsPatchIn)
    return await service.change_settings(ctx, user, id, body)
