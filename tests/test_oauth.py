"""OAuth 2.0 from the attacker's side (SPEC §1): grants, rotation, revocation, RFC 6749 errors."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import httpx
import pytest

from dovecote.auth import service as auth_service
from dovecote.core import clock
from dovecote.core.db import standalone_unit
from tests.conftest import World

TOKEN = "/oauth/token/"
REVOKE = "/oauth/revoke_token/"
ME = "/api/v2/user/me/"
PASSWORD = "correct horse battery"


async def make_client(world: World, *, confidential: bool = False) -> tuple[str, str | None]:
    state = world.app.state.dovecote
    async with standalone_unit(world.database) as uow:
        ctx = auth_service.Context(uow, state.settings, state.jwt_secret)
        return await auth_service.create_client(ctx, "test app", confidential=confidential)


async def login(
    client: httpx.AsyncClient, client_id: str, username: str = "anna", **extra: str
) -> httpx.Response:
    data = {
        "grant_type": "password",
        "client_id": client_id,
        "username": username,
        "password": PASSWORD,
        **extra,
    }
    return await client.post(TOKEN, data=data)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert isinstance(body.get("error_description"), str)
    assert "detail" not in body


def assert_api_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["errors"][0]["code"] == "authentication_failed"


@pytest.fixture
async def anna(world: World) -> Any:
    return await world.user("anna", password=PASSWORD)


# --- password grant ----------------------------------------------------------------------------


async def test_password_grant_issues_working_tokens(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, _ = await make_client(world)
    response = await login(client, client_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 36000
    assert body["scope"] == "read write"
    assert body["access_token"] and body["refresh_token"]
    assert body["access_token"] != body["refresh_token"]
    me = await client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.json()["id"] == anna.id


async def test_usernames_are_case_insensitive(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, _ = await make_client(world)
    assert (await login(client, client_id, username="ANNA")).status_code == 200


async def test_tokens_are_stored_only_as_hashes(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, _ = await make_client(world)
    body = (await login(client, client_id)).json()
    rows = await world.sql("SELECT access_hash, refresh_hash FROM oauth_tokens")
    assert len(rows) == 1
    stored = {bytes(rows[0][0]), bytes(rows[0][1])}
    assert body["access_token"].encode() not in stored
    assert all(len(value) == 32 for value in stored)
    password_hash = (await world.sql("SELECT password_hash FROM users"))[0][0]
    assert PASSWORD not in password_hash and password_hash.startswith("$argon2")


async def test_access_token_expires(client: httpx.AsyncClient, world: World, anna: Any) -> None:
    client_id, _ = await make_client(world)
    access = (await login(client, client_id)).json()["access_token"]
    clock.advance(timedelta(seconds=36000))
    assert_api_401(await client.get(ME, headers=bearer(access)))


async def test_wrong_password(client: httpx.AsyncClient, world: World, anna: Any) -> None:
    client_id, _ = await make_client(world)
    response = await login(client, client_id, password="wrong password")
    assert_oauth_error(response, 400, "invalid_grant")


async def test_unknown_user_looks_like_a_wrong_password(
    client: httpx.AsyncClient, world: World
) -> None:
    client_id, _ = await make_client(world)
    assert_oauth_error(await login(client, client_id, username="nobody"), 400, "invalid_grant")


async def test_user_without_a_password_cannot_log_in(
    client: httpx.AsyncClient, world: World
) -> None:
    await world.user("bruno")
    client_id, _ = await make_client(world)
    response = await client.post(
        TOKEN,
        data={
            "grant_type": "password",
            "client_id": client_id,
            "username": "bruno",
            "password": "",
        },
    )
    assert_oauth_error(response, 400, "invalid_request")
    response = await login(client, client_id, username="bruno")
    assert_oauth_error(response, 400, "invalid_grant")


async def test_deleted_or_deactivated_user_cannot_log_in(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, _ = await make_client(world)
    await world.sql("UPDATE users SET is_active = false WHERE id = :id", id=anna.id)
    assert_oauth_error(await login(client, client_id), 400, "invalid_grant")


async def test_unknown_client(client: httpx.AsyncClient, anna: Any) -> None:
    assert_oauth_error(await login(client, "no-such-client"), 401, "invalid_client")


async def test_confidential_client_without_secret(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, secret = await make_client(world, confidential=True)
    assert_oauth_error(await login(client, client_id), 401, "invalid_client")
    response = await login(client, client_id, client_secret="not the secret")
    assert_oauth_error(response, 401, "invalid_client")
    assert secret is not None
    assert (await login(client, client_id, client_secret=secret)).status_code == 200


async def test_confidential_client_with_basic_authentication(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, secret = await make_client(world, confidential=True)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    data = {"grant_type": "password", "username": "anna", "password": PASSWORD}
    response = await client.post(TOKEN, data=data, headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200, response.text
    response = await client.post(TOKEN, data=data, headers={"Authorization": "Basic !!!"})
    assert_oauth_error(response, 401, "invalid_client")


@pytest.mark.parametrize(
    "data, error",
    [
        ({}, "invalid_request"),
        ({"grant_type": "password"}, "invalid_request"),
        ({"grant_type": "password", "client_id": "x"}, "invalid_request"),
        ({"grant_type": "client_credentials", "client_id": "x"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "client_id": "x"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token", "client_id": "x"}, "invalid_request"),
    ],
)
async def test_incomplete_requests(
    client: httpx.AsyncClient, data: dict[str, str], error: str
) -> None:
    assert_oauth_error(await client.post(TOKEN, data=data), 400, error)


@pytest.mark.parametrize(
    "content, content_type",
    [
        (b'{"grant_type": "password"}', "application/json"),
        (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
        (b"--xx\r\ngarbage", "multipart/form-data"),
        (b"--xx\r\ngarbage", "multipart/form-data; boundary=xx"),
        (b"", "text/plain"),
    ],
)
async def test_malformed_bodies_get_rfc6749_errors(
    client: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    for path in (TOKEN, REVOKE):
        response = await client.post(path, content=content, headers={"Content-Type": content_type})
        assert response.status_code == 400, response.text
        assert "error" in response.json()


# --- refresh grant -----------------------------------------------------------------------------


async def refresh(
    client: httpx.AsyncClient, client_id: str, token: str, **extra: str
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "client_id": client_id, "refresh_token": token, **extra}
    return await client.post(TOKEN, data=data)


async def test_refresh_rotates(client: httpx.AsyncClient, world: World, anna: Any) -> None:
    client_id, _ = await make_client(world)
    first = (await login(client, client_id)).json()
    response = await refresh(client, client_id, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get(ME, headers=bearer(second["access_token"]))).status_code == 200
    # The refreshed-away access token stops working too.
    assert_api_401(await client.get(ME, headers=bearer(first["access_token"])))


async def test_reused_refresh_token_fails_and_revokes_the_family(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, _ = await make_client(world)
    first = (await login(client, client_id)).json()
    second = (await refresh(client, client_id, first["refresh_token"])).json()
    third = (await refresh(client, client_id, second["refresh_token"])).json()

    replay = await refresh(client, client_id, first["refresh_token"])
    assert_oauth_error(replay, 400, "invalid_grant")
    # The whole chain is dead: the newest access and refresh tokens included.
    assert_api_401(await client.get(ME, headers=bearer(third["access_token"])))
    assert_oauth_error(
        await refresh(client, client_id, third["refresh_token"]), 400, "invalid_grant"
    )


async def test_other_families_survive_a_replay(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, _ = await make_client(world)
    stolen = (await login(client, client_id)).json()
    other = (await login(client, client_id)).json()
    await refresh(client, client_id, stolen["refresh_token"])
    await refresh(client, client_id, stolen["refresh_token"])
    assert (await client.get(ME, headers=bearer(other["access_token"]))).status_code == 200


async def test_refresh_with_another_clients_token(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, _ = await make_client(world)
    other_id, _ = await make_client(world)
    tokens = (await login(client, client_id)).json()
    response = await refresh(client, other_id, tokens["refresh_token"])
    assert_oauth_error(response, 400, "invalid_grant")
    # The refusal spent nothing: the rightful client can still refresh.
    assert (await refresh(client, client_id, tokens["refresh_token"])).status_code == 200


async def test_refresh_with_garbage_and_access_tokens(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, _ = await make_client(world)
    tokens = (await login(client, client_id)).json()
    for token in ("garbage", tokens["access_token"], "a.b.c", "x" * 10_000):
        assert_oauth_error(await refresh(client, client_id, token), 400, "invalid_grant")


async def test_expired_refresh_token(client: httpx.AsyncClient, world: World, anna: Any) -> None:
    client_id, _ = await make_client(world)
    tokens = (await login(client, client_id)).json()
    clock.advance(timedelta(days=31))
    assert_oauth_error(
        await refresh(client, client_id, tokens["refresh_token"]), 400, "invalid_grant"
    )


async def test_refresh_for_a_deleted_user(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, _ = await make_client(world)
    tokens = (await login(client, client_id)).json()
    assert (await client.get(ME, headers=bearer(tokens["access_token"]))).status_code == 200
    await world.sql("UPDATE users SET deleted = true WHERE id = :id", id=anna.id)
    assert_api_401(await client.get(ME, headers=bearer(tokens["access_token"])))
    assert_oauth_error(
        await refresh(client, client_id, tokens["refresh_token"]), 400, "invalid_grant"
    )


async def test_confidential_client_must_authenticate_to_refresh(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, secret = await make_client(world, confidential=True)
    assert secret is not None
    tokens = (await login(client, client_id, client_secret=secret)).json()
    response = await refresh(client, client_id, tokens["refresh_token"])
    assert_oauth_error(response, 401, "invalid_client")
    response = await refresh(client, client_id, tokens["refresh_token"], client_secret=secret)
    assert response.status_code == 200, response.text


# --- revocation --------------------------------------------------------------------------------


async def test_revoked_access_token_stops_working_at_once(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, _ = await make_client(world)
    tokens = (await login(client, client_id)).json()
    headers = bearer(tokens["access_token"])
    assert (await client.get(ME, headers=headers)).status_code == 200
    response = await client.post(
        REVOKE, data={"client_id": client_id, "token": tokens["access_token"]}
    )
    assert response.status_code == 200, response.text
    assert_api_401(await client.get(ME, headers=headers))
    assert_api_401(await client.get("/api/v2/pm/", headers=headers))


async def test_revoked_refresh_token_cannot_refresh(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, _ = await make_client(world)
    tokens = (await login(client, client_id)).json()
    await client.post(REVOKE, data={"client_id": client_id, "token": tokens["refresh_token"]})
    assert_oauth_error(
        await refresh(client, client_id, tokens["refresh_token"]), 400, "invalid_grant"
    )


async def test_revoking_an_unknown_token_is_not_an_error(
    client: httpx.AsyncClient, world: World
) -> None:
    client_id, _ = await make_client(world)
    response = await client.post(REVOKE, data={"client_id": client_id, "token": "nonsense"})
    assert response.status_code == 200


async def test_another_client_cannot_revoke_my_token(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, _ = await make_client(world)
    other_id, _ = await make_client(world)
    tokens = (await login(client, client_id)).json()
    await client.post(REVOKE, data={"client_id": other_id, "token": tokens["access_token"]})
    assert (await client.get(ME, headers=bearer(tokens["access_token"]))).status_code == 200


async def test_revoke_errors(client: httpx.AsyncClient, world: World) -> None:
    client_id, _ = await make_client(world, confidential=True)
    assert_oauth_error(await client.post(REVOKE, data={"token": "t"}), 400, "invalid_request")
    assert_oauth_error(
        await client.post(REVOKE, data={"client_id": "nope", "token": "t"}), 401, "invalid_client"
    )
    assert_oauth_error(
        await client.post(REVOKE, data={"client_id": client_id, "token": "t"}),
        401,
        "invalid_client",
    )


async def test_oauth_endpoints_work_without_trailing_slash(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, _ = await make_client(world)
    data = {"grant_type": "password", "client_id": client_id, "username": "anna"}
    response = await client.post("/oauth/token", data={**data, "password": PASSWORD})
    assert response.status_code == 200
    token = response.json()["access_token"]
    revoke = await client.post("/oauth/revoke_token", data={"client_id": client_id, "token": token})
    assert revoke.status_code == 200


async def test_oversized_oauth_bodies_are_refused(client: httpx.AsyncClient) -> None:
    body = b"grant_type=password&client_id=x&username=a&password=" + b"p" * 2_000_000
    for path in (TOKEN, REVOKE):
        response = await client.post(
            path, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert_oauth_error(response, 413, "invalid_request")


async def test_nul_characters_are_invalid_requests(
    client: httpx.AsyncClient, world: World, anna: Any
) -> None:
    client_id, _ = await make_client(world)
    for data in (
        {"client_id": client_id, "username": "anna\x00", "password": PASSWORD},
        {"client_id": "\x00", "username": "anna", "password": PASSWORD},
        {"client_id": client_id, "username": "anna", "password": "\x00"},
    ):
        response = await client.post(TOKEN, data={"grant_type": "password", **data})
        assert_oauth_error(response, 400, "invalid_request")
    response = await client.post(REVOKE, data={"client_id": client_id, "token": "a\x00"})
    assert_oauth_error(response, 400, "invalid_request")
