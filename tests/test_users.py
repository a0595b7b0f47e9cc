"""Users and the follow graph (SPEC §6)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Member, World

USER = "/api/v2/user"
USER_FIELDS = {
    "id",
    "username",
    "real_name",
    "avatar",
    "ext_id",
    "deleted",
    "community_badge",
    "date_joined",
    "bio",
    "followers_counter",
    "followings_counter",
}


async def get(client: httpx.AsyncClient, who: Member, path: str, **params: Any) -> Any:
    response = await client.get(f"{USER}{path}", headers=who.auth, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def post(client: httpx.AsyncClient, who: Member, path: str, **kwargs: Any) -> httpx.Response:
    return await client.post(f"{USER}{path}", headers=who.auth, **kwargs)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and body["errors"]
    if code is not None:
        assert body["errors"][0]["code"] == code, body


# --- me and detail -----------------------------------------------------------------------------


async def test_me(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna", email="anna@example.org", real_name="Anna Rossi")
    body = await get(client, anna, "/me/")
    assert set(body) >= USER_FIELDS | {"email", "role"}
    assert body["id"] == anna.id and body["username"] == "anna"
    assert body["email"] == "anna@example.org" and body["role"] is None
    assert body["real_name"] == "Anna Rossi" and body["deleted"] is False
    boss = await world.user("boss", role="moderator")
    assert (await get(client, boss, "/me")).get("role") == "moderator"


async def test_user_detail_and_can_send_pm_to(client: httpx.AsyncClient, world: World) -> None:
    anna, bruno, carla = await world.user("anna"), await world.user("bruno"), await world.user("c")
    await world.follow(bruno, anna)
    body = await get(client, anna, f"/{bruno.id}/")
    assert set(body) >= USER_FIELDS | {"can_send_pm_to"}
    assert "email" not in body and "role" not in body and "password_hash" not in body
    assert body["can_send_pm_to"] is True  # bruno follows anna
    assert (await get(client, bruno, f"/{anna.id}/"))["can_send_pm_to"] is False
    assert (await get(client, anna, f"/{carla.id}/"))["can_send_pm_to"] is False
    assert (await get(client, anna, f"/{anna.id}/"))["can_send_pm_to"] is False
    await post(client, bruno, f"/{anna.id}/hide/")
    assert (await get(client, anna, f"/{bruno.id}/"))["can_send_pm_to"] is False


async def test_can_send_pm_to_for_staff_and_deleted_users(
    client: httpx.AsyncClient, world: World
) -> None:
    boss, anna, gone = await world.user("boss", role="editor"), await world.user("a"), None
    gone = await world.user("gone")
    assert (await get(client, boss, f"/{anna.id}/"))["can_send_pm_to"] is True
    await world.sql("UPDATE users SET deleted = true WHERE id = :id", id=gone.id)
    body = await get(client, boss, f"/{gone.id}/")
    assert body["deleted"] is True and body["can_send_pm_to"] is False


async def test_unknown_user_is_404(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    for path in ("/424242/", "/424242/is_followed/", "/424242/followers/", "/424242/is_hidden/"):
        assert_error(await client.get(f"{USER}{path}", headers=anna.auth), 404)
    for path in ("/424242/follow/", "/424242/hide/"):
        assert_error(await post(client, anna, path), 404)


GARBAGE_IDS = [
    "abc",
    "0",
    "-1",
    "1.5",
    "1e3",
    "99999999999999999999",
    "9223372036854775808",
    "%00",
    "%20",
    "0x10",
    "\u0661",  # ARABIC-INDIC DIGIT ONE: int() would read it as 1
]


@pytest.mark.parametrize("garbage", GARBAGE_IDS)
async def test_garbage_ids_name_no_user(
    client: httpx.AsyncClient, world: World, garbage: str
) -> None:
    """A path id that is not a positive id the API can hold names nobody: the 404 of an
    unknown path, whatever its form."""
    anna = await world.user("anna")
    reads = ("/", "/is_followed/", "/is_follower/", "/followers/", "/followings/")
    for suffix in (*reads, "/is_hidden/", "/is_hidden_by/"):
        response = await client.get(f"{USER}/{garbage}{suffix}", headers=anna.auth)
        assert_error(response, 404, "not_found")
    for suffix in ("/follow/", "/hide/"):
        assert_error(await post(client, anna, f"/{garbage}{suffix}"), 404, "not_found")


# --- following ---------------------------------------------------------------------------------


async def test_follow_toggles_and_counts(client: httpx.AsyncClient, world: World) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    response = await post(client, anna, f"/{bruno.id}/follow/")
    assert response.status_code == 204 and response.content == b""
    assert (await get(client, anna, f"/{bruno.id}/is_followed/")) == {"is_followed": True}
    assert (await get(client, bruno, f"/{anna.id}/is_follower/")) == {"is_follower": True}
    assert (await get(client, anna, f"/{bruno.id}/is_follower/")) == {"is_follower": False}
    assert (await get(client, bruno, f"/{anna.id}/is_followed/")) == {"is_followed": False}
    assert (await get(client, anna, "/me/"))["followings_counter"] == 1
    assert (await get(client, anna, f"/{bruno.id}/"))["followers_counter"] == 1

    assert (await post(client, anna, f"/{bruno.id}/follow")).status_code == 204  # unfollow
    assert (await get(client, anna, f"/{bruno.id}/is_followed/")) == {"is_followed": False}
    assert (await get(client, anna, "/me/"))["followings_counter"] == 0
    assert (await get(client, anna, f"/{bruno.id}/"))["followers_counter"] == 0


async def test_cannot_follow_yourself_or_a_deleted_user(
    client: httpx.AsyncClient, world: World
) -> None:
    anna, gone = await world.user("anna"), await world.user("gone")
    assert_error(await post(client, anna, f"/{anna.id}/follow/"), 400)
    await world.sql("UPDATE users SET deleted = true WHERE id = :id", id=gone.id)
    assert_error(await post(client, anna, f"/{gone.id}/follow/"), 404)
    assert (await get(client, anna, "/me/"))["followings_counter"] == 0


async def test_followers_and_followings_are_paginated(
    client: httpx.AsyncClient, world: World
) -> None:
    star = await world.user("star")
    fans = [await world.user(f"fan{i}") for i in range(5)]
    for fan in fans:
        assert (await post(client, fan, f"/{star.id}/follow/")).status_code == 204
    page = await get(client, star, f"/{star.id}/followers/", limit=2)
    assert page["count"] == 5 and len(page["results"]) == 2
    assert page["previous"] is None and page["next"].startswith("http")
    assert set(page["results"][0]) >= USER_FIELDS
    seen = [u["id"] for u in page["results"]]
    while page["next"]:
        response = await client.get(page["next"], headers=star.auth)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [u["id"] for u in page["results"]]
    assert sorted(seen) == sorted(f.id for f in fans)
    followings = await get(client, fans[0], f"/{fans[0].id}/followings/")
    assert followings["count"] == 1 and followings["results"][0]["id"] == star.id
    empty = await get(
        client, star, f"/{star.id}/followings/", limit="undefined", offset="undefined"
    )
    assert empty == {"count": 0, "next": None, "previous": None, "results": []}


@pytest.mark.parametrize("params", [{"limit": "abc"}, {"offset": "-1"}, {"limit": "1e3"}])
async def test_bad_paging_is_400(
    client: httpx.AsyncClient, world: World, params: dict[str, str]
) -> None:
    anna = await world.user("anna")
    response = await client.get(f"{USER}/{anna.id}/followers/", params=params, headers=anna.auth)
    assert_error(response, 400)


async def test_connection_statuses(client: httpx.AsyncClient, world: World) -> None:
    anna, bruno, carla = await world.user("anna"), await world.user("bruno"), await world.user("c")
    await world.follow(anna, bruno)
    response = await post(
        client, anna, "/connection/statuses/", json={"users": [bruno.id, carla.id, bruno.id]}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "connection_statuses": {str(bruno.id): "followed", str(carla.id): None}
    }
    empty = await post(client, anna, "/connection/statuses", json={"users": []})
    assert empty.json() == {"connection_statuses": {}}


@pytest.mark.parametrize(
    "body",
    [
        {"users": None},
        {"users": "1"},
        {"users": ["x"]},
        {"users": [[1]]},
        {"users": [99999999999999999999]},
        {"users": [2**63]},
        {"users": [1.5]},
        {"users": list(range(1, 2000))},
    ],
    ids=repr,
)
async def test_connection_statuses_with_bad_bodies(
    client: httpx.AsyncClient, world: World, body: Any
) -> None:
    anna = await world.user("anna")
    assert_error(await post(client, anna, "/connection/statuses/", json=body), 400)


# --- hiding ------------------------------------------------------------------------------------


async def test_hide_toggles(client: httpx.AsyncClient, world: World) -> None:
    anna, bruno, carla = await world.user("anna"), await world.user("bruno"), await world.user("c")
    for target in (carla, bruno):
        response = await post(client, anna, f"/{target.id}/hide/")
        assert response.status_code == 204 and response.content == b""
    assert await get(client, anna, "/hidden_users_id/") == sorted([bruno.id, carla.id])
    hidden = await get(client, anna, "/hidden_users/")
    assert hidden["count"] == 2
    assert {u["id"] for u in hidden["results"]} == {bruno.id, carla.id}
    assert await get(client, anna, f"/{bruno.id}/is_hidden/") == {"is_hidden": True}
    assert await get(client, bruno, f"/{anna.id}/is_hidden_by/") == {"is_hidden_by": True}
    assert await get(client, bruno, f"/{anna.id}/is_hidden/") == {"is_hidden": False}
    assert await get(client, anna, f"/{bruno.id}/is_hidden_by/") == {"is_hidden_by": False}

    assert (await post(client, anna, f"/{bruno.id}/hide")).status_code == 204  # unhide
    assert await get(client, anna, "/hidden_users_id/") == [carla.id]
    assert await get(client, anna, f"/{bruno.id}/is_hidden/") == {"is_hidden": False}
    page = await get(client, anna, "/hidden_users/", limit=1)
    assert page["count"] == 1 and page["next"] is None


async def test_cannot_hide_yourself(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    assert_error(await post(client, anna, f"/{anna.id}/hide/"), 400)
    assert await get(client, anna, "/hidden_users_id/") == []


# --- signup ------------------------------------------------------------------------------------


SIGNUP = "/api/v2/sso/signup/"


async def test_signup_creates_a_user(client: httpx.AsyncClient, world: World) -> None:
    admin = await world.user("admin", role="admin")
    body = {
        "username": "New_User-1",
        "real_name": "New User",
        "email": "new@example.org",
        "password": "long enough password",
        "ext_id": 77,
        "role": "editor",
        "avatar": "https://example.org/a.png",
    }
    response = await client.post(SIGNUP, json=body, headers=admin.auth)
    assert response.status_code == 201, response.text
    user = response.json()
    assert set(user) >= USER_FIELDS
    assert user["username"] == "New_User-1" and user["ext_id"] == 77
    assert "password" not in user and "password_hash" not in user
    detail = await get(client, admin, f"/{user['id']}/")
    assert detail["real_name"] == "New User"
    minimal = await client.post(
        SIGNUP.rstrip("/"), data={"username": "formuser"}, headers=admin.auth
    )
    assert minimal.status_code == 201, minimal.text


@pytest.mark.parametrize("role", [None, "moderator", "editor"])
async def test_signup_is_for_admins_only(
    client: httpx.AsyncClient, world: World, role: str | None
) -> None:
    caller = await world.user("caller", role=role)
    response = await client.post(SIGNUP, json={"username": "sneaky"}, headers=caller.auth)
    assert_error(response, 403)
    assert await world.sql("SELECT COUNT(*) FROM users WHERE username = 'sneaky'") == [(0,)]


async def test_signup_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post(SIGNUP, json={"username": "sneaky"})
    assert_error(response, 401)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": ""},
        {"username": "has space"},
        {"username": "dot.ted"},
        {"username": "ünïcode"},
        {"username": "new\n"},
        {"username": "x" * 151},
        {"username": 5},
        {"username": None},
        {"username": ["a"]},
        {"username": "ok", "email": "not an email"},
        {"username": "ok", "password": "short"},
        {"username": "ok", "role": "superuser"},
        {"username": "ok", "ext_id": -1},
        {"username": "ok", "ext_id": 2**64},
        {"username": "ok", "real_name": "x" * 256},
        {"username": "ok", "unknown_field": 1},
    ],
    ids=repr,
)
async def test_signup_with_invalid_input(
    client: httpx.AsyncClient, world: World, body: dict[str, Any]
) -> None:
    admin = await world.user("admin", role="admin")
    assert_error(await client.post(SIGNUP, json=body, headers=admin.auth), 400)
    assert await world.sql("SELECT COUNT(*) FROM users") == [(1,)]


async def test_signup_with_a_taken_username(client: httpx.AsyncClient, world: World) -> None:
    admin = await world.user("admin", role="admin")
    await world.user("anna")
    for name in ("anna", "ANNA", "Anna", "admin"):
        response = await client.post(SIGNUP, json={"username": name}, headers=admin.auth)
        assert_error(response, 400)
        assert response.json()["errors"][0]["field"] == "username"
        assert response.json()["errors"][0]["messages"][0]["code"] == "unique"


async def test_signup_with_text_that_is_not_unicode(
    client: httpx.AsyncClient, world: World
) -> None:
    admin = await world.user("admin", role="admin")
    response = await client.post(
        SIGNUP,
        content=b'{"username": "ok", "real_name": "\\udc00"}',
        headers={**admin.auth, "Content-Type": "application/json"},
    )
    assert_error(response, 400)
