"""Moderation endpoints: PATCH /api/v2/moderation/user/{id}/ and DELETE /api/v2/user/{id}/.
Thin: who is calling, the body, the service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, Response

from dovecote.auth.dependencies import CurrentUser
from dovecote.core.deps import AppSettings, ObjectId, UoW
from dovecote.core.openapi import body_of, errors
from dovecote.core.pagination import Absent
from dovecote.core.requests import read_body
from dovecote.core.routing import Router
from dovecote.core.state import app_state
from dovecote.moderation import service
from dovecote.moderation.schemas import ModerateIn
from dovecote.uploads.router import storage_of

router = Router(prefix="/api/v2", tags=["moderation"])


async def _context(
    request: Request, uow: UoW, settings: AppSettings, user: CurrentUser
) -> service.Context:
    broker, storage = app_state(request).broker, storage_of(request)
    return service.Context(uow, settings, storage, broker, actor=f"user {user.id}")


Ctx = Annotated[service.Context, Depends(_context)]


@router.patch(
    "/moderation/user/{id:int}/",
    status_code=204,
    responses=errors(400, 401, 403, 404),
    openapi_extra=body_of(ModerateIn, "application/json", "application/x-www-form-urlencoded"),
    summary="Block, unblock or delete a member (moderators and admins)",
)
async def moderate_user(request: Request, id: ObjectId, ctx: Ctx, user: CurrentUser) -> Response:
    service.check_may_moderate(user)  # before the body: a member hears 403 whatever sent
    body = await read_body(request, ModerateIn)
    await service.moderate(ctx, user, id, body)
    return Response(status_code=204)


@router.delete(
    "/user/{id:int}/",
    status_code=204,
    responses=errors(400, 401, 403, 404),
    summary="Delete a member: soft, or hard with hard=1 (the member or an admin)",
)
async def delete_user(
    id: ObjectId,
    ctx: Ctx,
    user: CurrentUser,
    hard: Annotated[bool | Absent, Query(description="1: hard delete (erase); else soft.")] = False,
) -> Response:
    await service.delete_member(ctx, user, id, hard=hard is True)
    return Response(status_code=204)
