"""User endpoints (SPEC §6). Thin: parse, call the service, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response

from dovecote.auth.dependencies import CurrentUser
from dovecote.core.deps import AppSettings, ObjectId, UoW
from dovecote.core.openapi import body_of, errors
from dovecote.core.pagination import Paging, offset_page
from dovecote.core.requests import read_body
from dovecote.core.routing import Router
from dovecote.core.schemas import Page
from dovecote.users import service
from dovecote.users.schemas import (
    ConnectionStatusesIn,
    ConnectionStatusesOut,
    IsFollowedOut,
    IsFollowerOut,
    IsHiddenByOut,
    IsHiddenOut,
    MeOut,
    SignupIn,
    UserDetailOut,
    UserOut,
)

router = Router(prefix="/api/v2", tags=["users"])
AUTH = errors(401)
AUTH_404 = errors(400, 401, 404)
JSON_OR_FORM = ("application/json", "application/x-www-form-urlencoded")


async def _context(uow: UoW, settings: AppSettings) -> service.Context:
    return service.Context(uow, settings)


Ctx = Annotated[service.Context, Depends(_context)]


@router.get("/user/me/", response_model=MeOut, responses=AUTH, summary="The caller")
async def me(ctx: Ctx, user: CurrentUser) -> MeOut:
    return await service.me(ctx, user)


@router.get("/user/hidden_users_id/", response_model=list[int], responses=AUTH)
async def hidden_users_id(ctx: Ctx, user: CurrentUser) -> list[int]:
    return await service.hidden_ids(ctx, user)


@router.get("/user/hidden_users/", response_model=Page[UserOut], responses=errors(400, 401))
async def hidden_users(
    request: Request, ctx: Ctx, user: CurrentUser, paging: Paging
) -> Page[UserOut]:
    count, users = await service.hidden_page(ctx, user, paging.limit, paging.offset)
    return offset_page(request, paging, count, users)


@router.post(
    "/user/connection/statuses/",
    response_model=ConnectionStatusesOut,
    responses=errors(400, 401),
    openapi_extra=body_of(ConnectionStatusesIn, *JSON_OR_FORM, required=False),
)
async def connection_statuses(
    request: Request, ctx: Ctx, user: CurrentUser
) -> ConnectionStatusesOut:
    body = await read_body(request, ConnectionStatusesIn)
    statuses = await service.connection_statuses(ctx, user, body.users)
    return ConnectionStatusesOut(connection_statuses=statuses)


@router.get("/user/{id:int}/", response_model=UserDetailOut, responses=AUTH_404)
async def user_detail(id: ObjectId, ctx: Ctx, user: CurrentUser) -> UserDetailOut:
    return await service.user_detail(ctx, user, id)


@router.post("/user/{id:int}/follow/", status_code=204, responses=AUTH_404)
async def follow(id: ObjectId, ctx: Ctx, user: CurrentUser) -> Response:
    await service.toggle_follow(ctx, user, id)
    return Response(status_code=204)


@router.get("/user/{id:int}/is_followed/", response_model=IsFollowedOut, responses=AUTH_404)
async def is_followed(id: ObjectId, ctx: Ctx, user: CurrentUser) -> IsFollowedOut:
    return IsFollowedOut(is_followed=await service.is_followed(ctx, user, id))


@router.get("/user/{id:int}/is_follower/", response_model=IsFollowerOut, responses=AUTH_404)
async def is_follower(id: ObjectId, ctx: Ctx, user: CurrentUser) -> IsFollowerOut:
    return IsFollowerOut(is_follower=await service.is_follower(ctx, user, id))


@router.get("/user/{id:int}/followers/", response_model=Page[UserOut], responses=AUTH_404)
async def followers(
    id: ObjectId, request: Request, ctx: Ctx, user: CurrentUser, paging: Paging
) -> Page[UserOut]:
    count, users = await service.follow_page(ctx, id, "followers", paging.limit, paging.offset)
    return offset_page(request, paging, count, users)


@router.get("/user/{id:int}/followings/", response_model=Page[UserOut], responses=AUTH_404)
async def followings(
    id: ObjectId, request: Request, ctx: Ctx, user: CurrentUser, paging: Paging
) -> Page[UserOut]:
    count, users = await service.follow_page(ctx, id, "followings", paging.limit, paging.offset)
    return offset_page(request, paging, count, users)


@router.post("/user/{id:int}/hide/", status_code=204, responses=AUTH_404)
async def hide(id: ObjectId, ctx: Ctx, user: CurrentUser) -> Response:
    await service.toggle_hide(ctx, user, id)
    return Response(status_code=204)


@router.get("/user/{id:int}/is_hidden/", response_model=IsHiddenOut, responses=AUTH_404)
async def is_hidden(id: ObjectId, ctx: Ctx, user: CurrentUser) -> IsHiddenOut:
    return IsHiddenOut(is_hidden=await service.is_hidden(ctx, user, id))


@router.get("/user/{id:int}/is_hidden_by/", response_model=IsHiddenByOut, responses=AUTH_404)
async def is_hidden_by(id: ObjectId, ctx: Ctx, user: CurrentUser) -> IsHiddenByOut:
    return IsHiddenByOut(is_hidden_by=await service.is_hidden_by(ctx, user, id))


@router.post(
    "/sso/signup/",
    status_code=201,
    response_model=UserOut,
    responses=errors(400, 401, 403),
    openapi_extra=body_of(SignupIn, *JSON_OR_FORM),
    summary="Create a user (admin only)",
)
async def signup(request: Request, ctx: Ctx, user: CurrentUser) -> UserOut:
    service.check_may_create_users(user)  # before the body: a stranger hears 403 whatever sent
    body = await read_body(request, SignupIn)
    return await service.create_user(ctx, **body.model_dump())
