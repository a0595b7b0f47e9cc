"""Every endpoint against every kind of caller, generated from the app's route table.

A new endpoint without a row in MATRIX fails `test_every_route_has_a_row`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from tests.conftest import SECRET, Member, World

TOKEN_KINDS = ("owner", "participant", "stranger")
BAD_KINDS = ("anonymous", "expired", "tampered", "alg_none", "deleted_user", "revoked")


@dataclass
class Scene:
    owner: Member
    participant: Member
    stranger: Member
    thread_id: int
    message_id: int


@dataclass
class Probe:
    method: str
    path: str  # route path as in the route table
    url: Callable[[Scene], str]
    expect: dict[str, int]  # kind -> status, for owner/participant/stranger
    public: bool = False  # answers the same without authentication
    body: Callable[[Scene], dict[str, Any]] | None = None
    form: bool = False
    bad_status: int = 401
    extra: dict[str, Any] = field(default_factory=dict)


def same(status: int) -> dict[str, int]:
    return dict.fromkeys(TOKEN_KINDS, status)


MATRIX: list[Probe] = [
    Probe(
        "POST",
        "/api/v2/pm/",
        lambda s: "/api/v2/pm/",
        {"owner": 201, "participant": 400, "stranger": 403},
        body=lambda s: {"recipients": [s.participant.id], "message": "hi"},
    ),
    Probe("GET", "/api/v2/pm/", lambda s: "/api/v2/pm/", same(200)),
    Probe(
        "GET",
        "/api/v2/pm/",
        lambda s: f"/api/v2/pm/?thread={s.thread_id}",
        {"owner": 200, "participant": 200, "stranger": 404},
    ),
    Probe("GET", "/api/v2/pm/search/", lambda s: "/api/v2/pm/search/?user=u", same(200)),
    Probe("GET", "/api/v2/pm/events/", lambda s: "/api/v2/pm/events/?since=0", same(200)),
    Probe(
        "GET",
        "/api/v2/pm/{id}/",
        lambda s: f"/api/v2/pm/{s.message_id}/",
        {"owner": 200, "participant": 200, "stranger": 404},
    ),
    Probe(
        "POST",
        "/api/v2/pm/upload/",
        lambda s: "/api/v2/pm/upload/",
        same(400),  # not multipart; test_uploads*.py drive the real flows
        body=lambda s: {"file": "x"},
    ),
    Probe(
        "GET",
        "/api/v2/pm/files/{uuid}/",
        lambda s: "/api/v2/pm/files/00000000-0000-4000-8000-000000000000/",
        same(404),  # entitlement to real files: test_uploads_attacks.py
    ),
    Probe("GET", "/api/v2/user/me/", lambda s: "/api/v2/user/me/", same(200)),
    Probe(
        "GET", "/api/v2/user/hidden_users_id/", lambda s: "/api/v2/user/hidden_users_id/", same(200)
    ),
    Probe("GET", "/api/v2/user/hidden_users/", lambda s: "/api/v2/user/hidden_users/", same(200)),
    Probe(
        "POST",
        "/api/v2/user/connection/statuses/",
        lambda s: "/api/v2/user/connection/statuses/",
        same(200),
        body=lambda s: {"users": [s.owner.id]},
    ),
    Probe("GET", "/api/v2/user/{id}/", lambda s: f"/api/v2/user/{s.owner.id}/", same(200)),
    Probe(
        "GET",
        "/api/v2/user/{id}/is_followed/",
        lambda s: f"/api/v2/user/{s.owner.id}/is_followed/",
        same(200),
    ),
    Probe(
        "GET",
        "/api/v2/user/{id}/is_follower/",
        lambda s: f"/api/v2/user/{s.owner.id}/is_follower/",
        same(200),
    ),
    Probe(
        "GET",
        "/api/v2/user/{id}/followers/",
        lambda s: f"/api/v2/user/{s.owner.id}/followers/",
        same(200),
    ),
    Probe(
        "GET",
        "/api/v2/user/{id}/followings/",
        lambda s: f"/api/v2/user/{s.owner.id}/followings/",
        same(200),
    ),
    Probe(
        "GET",
        "/api/v2/user/{id}/is_hidden/",
        lambda s: f"/api/v2/user/{s.owner.id}/is_hidden/",
        same(200),
    ),
    Probe(
        "GET",
        "/api/v2/user/{id}/is_hidden_by/",
        lambda s: f"/api/v2/user/{s.owner.id}/is_hidden_by/",
        same(200),
    ),
    Probe(
        "POST",
        "/api/v2/sso/signup/",
        lambda s: "/api/v2/sso/signup/",
        same(403),
        body=lambda s: {"username": "newcomer"},
    ),
    Probe(
        "GET",
        "/api/v2/user/{id}/settings/",
        lambda s: f"/api/v2/user/{s.owner.id}/settings/",
        {"owner": 200, "participant": 404, "stranger": 404},
    ),
    # Writes last: they change the scene.
    Probe(
        "PATCH",
        "/api/v2/user/{id}/settings/",
        lambda s: f"/api/v2/user/{s.owner.id}/settings/",
        {"owner": 200, "participant": 404, "stranger": 404},
        body=lambda s: {"qa_frequency": 0},
    ),
    Probe(
        "DELETE",
        "/api/v2/pm/{id}/",
        lambda s: f"/api/v2/pm/{s.message_id}/",
        {"owner": 204, "participant": 403, "stranger": 404},
    ),
    Probe(
        "DELETE",
        "/api/v2/pm/",
        lambda s: f"/api/v2/pm/?thread={s.thread_id}",
        {"owner": 204, "participant": 204, "stranger": 404},
    ),
    Probe(
        "POST",
        "/api/v2/user/{id}/follow/",
        lambda s: f"/api/v2/user/{s.owner.id}/follow/",
        {"owner": 400, "participant": 204, "stranger": 204},
    ),
    Probe(
        "POST",
        "/api/v2/user/{id}/hide/",
        lambda s: f"/api/v2/user/{s.owner.id}/hide/",
        {"owner": 400, "participant": 204, "stranger": 204},
    ),
    Probe(
        "PATCH",
        "/api/v2/moderation/user/{id}/",
        lambda s: f"/api/v2/moderation/user/{s.participant.id}/",
        same(403),  # moderators and admins only: tests/test_moderation.py
        body=lambda s: {"status": "u"},
    ),
    Probe(  # last of the members' rows: the owner deletes themselves
        "DELETE",
        "/api/v2/user/{id}/",
        lambda s: f"/api/v2/user/{s.owner.id}/",
        {"owner": 204, "participant": 403, "stranger": 403},
    ),
    # Public endpoints: the Authorization header does not matter.
    Probe(
        "POST",
        "/oauth/token/",
        lambda s: "/oauth/token/",
        same(400),
        public=True,
        body=lambda s: {"grant_type": "password"},
        form=True,
    ),
    Probe(
        "POST",
        "/oauth/revoke_token/",
        lambda s: "/oauth/revoke_token/",
        same(400),
        public=True,
        body=lambda s: {"token": "x"},
        form=True,
    ),
    Probe(
        "POST",
        "/api/v2/jwt/verify_token/",
        lambda s: "/api/v2/jwt/verify_token/",
        same(401),
        public=True,
        body=lambda s: {"token": "not-a-jwt"},
    ),
    Probe("GET", "/healthz", lambda s: "/healthz", same(200), public=True),
    # What react-core reads before sign-in (a token, even a bad one, does not matter).
    Probe(
        "GET",
        "/api/v2/dynamic_preference/",
        lambda s: "/api/v2/dynamic_preference/",
        same(200),
        public=True,
    ),
    Probe(
        "GET",
        "/api/v2/dynamic_preference/search/",
        lambda s: "/api/v2/dynamic_preference/search/?keys=text.application_name",
        same(200),
        public=True,
    ),
    Probe(
        "GET",
        "/api/v2/dynamic_preference/{id}/",
        lambda s: "/api/v2/dynamic_preference/1/",
        same(200),
        public=True,
    ),
    Probe("GET", "/api/v2/feature/", lambda s: "/api/v2/feature/", same(200), public=True),
    Probe("GET", "/web-config.json", lambda s: "/web-config.json", same(200), public=True),
    Probe("GET", "/readyz", lambda s: "/readyz", same(200), public=True),
]


def test_every_route_has_a_row(app: FastAPI) -> None:
    """The route table as published in the OpenAPI document, against the matrix."""
    covered = {(p.method, p.path) for p in MATRIX}
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert routes - covered == set(), "add these endpoints to MATRIX"
    assert covered - routes == set(), "MATRIX names endpoints that do not exist"


async def _scene(client: httpx.AsyncClient, world: World) -> Scene:
    owner, participant, stranger = (
        await world.user("owner"),
        await world.user("participant"),
        await world.user("stranger"),
    )
    await world.mutual(owner, participant)
    sent = await client.post(
        "/api/v2/pm/", json={"recipients": [participant.id], "message": "m"}, headers=owner.auth
    )
    assert sent.status_code == 201
    return Scene(owner, participant, stranger, sent.json()["thread_id"], sent.json()["id"])


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _bad_token(
    kind: str, client: httpx.AsyncClient, world: World, scene: Scene
) -> str | None:
    now = int(time.time())
    claims = {"user_id": scene.owner.id, "token_type": "access", "jti": "j", "iat": now}
    if kind == "anonymous":
        return None
    if kind == "expired":
        return jwt.encode(
            {**claims, "iat": now - 7200, "exp": now - 3600}, SECRET, algorithm="HS256"
        )
    if kind == "tampered":
        header, _, signature = scene.owner.token.split(".")
        forged = _b64({**claims, "exp": now + 600, "user_id": scene.participant.id})
        return f"{header}.{forged}.{signature}"
    if kind == "alg_none":
        unsigned: str = jwt.encode({**claims, "exp": now + 600}, None, algorithm="none")
        return unsigned
    if kind == "deleted_user":
        ghost = await world.user("ghost")
        await world.sql("UPDATE users SET deleted = true WHERE id = :id", id=ghost.id)
        return ghost.token
    assert kind == "revoked"
    return await _revoked_oauth_token(client, world)


async def _revoked_oauth_token(client: httpx.AsyncClient, world: World) -> str:
    from dovecote.auth import service
    from dovecote.core.db import standalone_unit

    await world.user("oauthuser", password="a-long-password")
    state = world.app.state.dovecote
    async with standalone_unit(world.database) as uow:
        ctx = service.Context(uow, state.settings, state.jwt_secret)
        client_id, _ = await service.create_client(ctx, "matrix", confidential=False)
    form = {
        "grant_type": "password",
        "client_id": client_id,
        "username": "oauthuser",
        "password": "a-long-password",
    }
    issued = await client.post("/oauth/token/", data=form)
    token = issued.json()["access_token"]
    assert (
        await client.get("/api/v2/user/me/", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200
    revoked = await client.post(
        "/oauth/revoke_token/", data={"client_id": client_id, "token": token}
    )
    assert revoked.status_code == 200
    return str(token)


async def _call(client: httpx.AsyncClient, probe: Probe, scene: Scene, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = probe.body(scene) if probe.body else None
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs["data" if probe.form else "json"] = body
    answer = await client.request(probe.method, probe.url(scene), headers=headers, **kwargs)
    if answer.status_code >= 400 and not probe.path.startswith("/oauth/"):
        assert set(answer.json()) == {"detail", "errors"}, answer.text
    if answer.status_code == 401 and not probe.path.startswith("/oauth/"):
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    return answer.status_code


@pytest.mark.parametrize("kind", TOKEN_KINDS)
async def test_members_get_what_the_matrix_says(
    client: httpx.AsyncClient, world: World, kind: str
) -> None:
    scene = await _scene(client, world)
    caller: Member = getattr(scene, kind)
    got = {
        f"{p.method} {p.url(scene)}": await _call(client, p, scene, caller.token) for p in MATRIX
    }
    want = {f"{p.method} {p.url(scene)}": p.expect[kind] for p in MATRIX}
    assert got == want


@pytest.mark.parametrize("kind", BAD_KINDS)
async def test_bad_credentials_get_401_everywhere(
    client: httpx.AsyncClient, world: World, kind: str
) -> None:
    scene = await _scene(client, world)
    token = await _bad_token(kind, client, world, scene)
    got = {f"{p.method} {p.url(scene)}": await _call(client, p, scene, token) for p in MATRIX}
    want = {
        f"{p.method} {p.url(scene)}": (p.expect["owner"] if p.public else p.bad_status)
        for p in MATRIX
    }
    assert got == want
    rows = await world.sql("SELECT count(*) FROM messages")
    assert rows[0][0] == 1, "no bad credential stored anything"
