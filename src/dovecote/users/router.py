"""User endpoints (SPEC §6). Thin: parse, call the service, shape the answer."""

from __future__ import annotations

from fastapi import Request, Response

from dovecote.auth.dependencies import CurrentUser
from dovecote.core.deps import ObjectId, Session
from dovecote.core.errors import PermissionDenied
from dovecote.core.openapi import body_of, errors
from dovecote.core.pagination import Paging, offset_page
from dovecote.core.requests import read_body
from dovecote.core.routing import Router
from dovecote.core.schemas import Page
from dovecote.users import repository, service
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


@router.get("/user/me/", response_model=MeOut, responses=AUTH, summary="The caller")
async def me(session: Session, user: CurrentUser) -> MeOut:
    return await service.me(session, user)


@router.get("/user/hidden_users_id/", response_model=list[int], responses=AUTH)
async def hidden_users_id(session: Session, user: CurrentUser) -> list[int]:
    return await repository.hidden_ids(session, user.id)


@router.get("/user/hidden_users/", response_model=Page[UserOut], responses=errors(400, 401))
async def hidden_users(
    request: Request, session: Session, user: CurrentUser, paging: Paging
) -> Page[UserOut]:
    count, rows = await repository.hidden_page(session, user.id, paging.limit, paging.offset)
    return offset_page(request, paging, count, [service.user_out(r) for r in rows])


@router.post(
    "/user/connection/statuses/",
    response_model=ConnectionStatusesOut,
    responses=errors(400, 401),
    openapi_extra=body_of(ConnectionStatusesIn, *JSON_OR_FORM, required=False),
)
async def connection_statuses(
    request: Request, session: Session, user: CurrentUser
) -> ConnectionStatusesOut:
    body = await read_body(request, ConnectionStatusesIn)
    statuses = await service.connection_statuses(session, user, body.users)
    return ConnectionStatusesOut(connection_statuses=statuses)


@router.get("/user/{id:int}/", response_model=UserDetailOut, responses=AUTH_404)
async def user_detail(id: ObjectId, session: Session, user: CurrentUser) -> UserDetailOut:
    return await service.user_detail(session, user, id)


@router.post("/user/{id:int}/follow/", status_code=204, responses=AUTH_404)
async def follow(id: ObjectId, session: Session, user: CurrentUser) -> Response:
    await service.toggle_follow(session, user, id)
    return Response(status_code=204)


@router.get("/user/{id:int}/is_followed/", response_model=IsFollowedOut, responses=AUTH_404)
async def is_followed(id: ObjectId, session: Session, user: CurrentUser) -> IsFollowedOut:
    await service.access_user(session, id)
    return IsFollowedOut(is_followed=await repository.follows(session, user.id, id))


@router.get("/user/{id:int}/is_follower/", response_model=IsFollowerOut, responses=AUTH_404)
async def is_follower(id: ObjectId, session: Session, user: CurrentUser) -> IsFollowerOut:
    await service.access_user(session, id)
    return IsFollowerOut(is_follower=await repository.follows(session, id, user.id))


@router.get("/user/{id:int}/followers/", response_model=Page[UserOut], responses=AUTH_404)
async def followers(
    id: ObjectId, request: Request, session: Session, user: CurrentUser, paging: Paging
) -> Page[UserOut]:
    await service.access_user(session, id)
    count, rows = await repository.followers_page(session, id, paging.limit, paging.offset)
    return offset_page(request, paging, count, [service.user_out(r) for r in rows])


@router.get("/user/{id:int}/followings/", response_model=Page[UserOut], responses=AUTH_404)
async def followings(
    id: ObjectId, request: Request, session: Session, user: CurrentUser, paging: Paging
) -> Page[UserOut]:
    await service.access_user(session, id)
    count, rows = await repository.followings_page(session, id, paging.limit, paging.offset)
    return offset_page(request, paging, count, [service.user_out(r) for r in rows])


@router.post("/user/{id:int}/hide/", status_code=204, responses=AUTH_404)
async def hide(id: ObjectId, session: Session, user: CurrentUser) -> Response:
    await service.toggle_hide(session, user, id)
    return Response(status_code=204)


@router.get("/user/{id:int}/is_hidden/", response_model=IsHiddenOut, responses=AUTH_404)
async def is_hidden(id: ObjectId, session: Session, user: CurrentUser) -> IsHiddenOut:
    await service.access_user(session, id)
    return IsHiddenOut(is_hidden=await repository.hides(session, user.id, id))


@router.get("/user/{id:int}/is_hidden_by/", response_model=IsHiddenByOut, responses=AUTH_404)
async def is_hidden_by(id: ObjectId, session: Session, user: CurrentUser) -> IsHiddenByOut:
    await service.access_user(session, id)
    return IsHiddenByOut(is_hidden_by=await repository.hides(session, id, user.id))


@router.post(
    "/sso/signup/",
    status_code=201,
    response_model=UserOut,
    responses=errors(400, 401, 403),
    openapi_extra=body_of(SignupIn, *JSON_OR_FORM),
    summary="Create a user (admin only)",
)
async def signup(request: Request, session: Session, user: CurrentUser) -> UserOut:
    if not user.is_admin:
        raise PermissionDenied("Only an admin may create users.")
    body = await read_body(request, SignupIn)
    return await service.create_user(session, **body.model_dump())
