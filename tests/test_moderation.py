"""Moderation (PATCH /api/v2/moderation/user/{id}/) and deleting members (DELETE
/api/v2/user/{id}/): what a block refuses on both send paths, what each delete keeps and
removes, and that members can neither moderate nor delete anyone but themselves."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from dovecote.core import clock
from dovecote.ops import invariants
from tests.conftest import Member, World
from tests.pm_support import PM, assert_state_consistent, error_code, send, thread
from tests.realtime_helpers import HEARTBEAT, closed_with, socket
from tests.test_oauth import make_client
from tests.uploading import fetch, ui_send, ui_upload

MODERATE = "/api/v2/moderation/user/{}/"


async def moderate(
    client: httpx.AsyncClient, moderator: Member, target: Member, **body: Any
) -> httpx.Response:
    return await client.patch(MODERATE.format(target.id), json=body, headers=moderator.auth)


async def delete_user(
    client: httpx.AsyncClient, caller: Member, target: Member, hard: bool = False
) -> httpx.Response:
    url = f"/api/v2/user/{target.id}/" + ("?hard=1" if hard else "")
    return await client.delete(url, headers=caller.auth)


@pytest.fixture
async def talking(world: World, client: httpx.AsyncClient) -> tuple[Member, Member, Member]:
    """A moderator, and anna and bruno who follow each other and share a thread."""
    mod = await world.user("mod", role="moderator")
    anna, bruno = await world.user("anna", password="anna-pw"), await world.user("bruno")
    await world.mutual(anna, bruno)
    await send(client, anna, bruno, text="first")
    return mod, anna, bruno


async def attempt(client: httpx.AsyncClient, sender: Member, to: Member, **extra: Any) -> Any:
    body = {"recipients": [to.id], "message": "again"}
    return await client.post(PM, json=body, headers=sender.auth | extra)


async def test_a_blocked_member_reads_but_sends_on_no_path_until_the_block_ends(
    client: httpx.AsyncClient, world: World, talking: tuple[Member, Member, Member]
) -> None:
    mod, anna, bruno = talking
    assert (await moderate(client, mod, anna, status="b", days_blocked="2")).status_code == 204

    existing_thread = await attempt(client, anna, bruno)  # PostgreSQL: the one-statement send
    with_key = await attempt(client, anna, bruno, **{"Idempotency-Key": "k1"})  # general path
    for refused in (existing_thread, with_key):
        assert refused.status_code == 403, refused.text
        assert error_code(refused) == "user_blocked"
        assert "blocked until" in refused.json()["detail"]
    assert [m["message"] for m in (await thread(client, anna, user=bruno.id))["results"]] == [
        "first"
    ]
    detail = await client.get(f"/api/v2/user/{bruno.id}/", headers=anna.auth)
    assert detail.json()["can_send_pm_to"] is False

    clock.advance(timedelta(days=2, seconds=1))
    anna.token = await world.token(anna)
    assert (await attempt(client, anna, bruno)).status_code == 201
    assert (await attempt(client, anna, bruno, **{"Idempotency-Key": "k2"})).status_code == 201
    await assert_state_consistent(world)


async def test_a_block_without_days_lasts_until_lifted(
    client: httpx.AsyncClient, world: World, talking: tuple[Member, Member, Member]
) -> None:
    mod, anna, bruno = talking
    assert (await moderate(client, mod, anna, status="b")).status_code == 204
    clock.advance(timedelta(days=3650))
    anna.token, mod.token = await world.token(anna), await world.token(mod)
    refused = await attempt(client, anna, bruno)
    assert refused.status_code == 403 and refused.json()["detail"] == "You are blocked."
    assert (await moderate(client, mod, anna, status="a")).status_code == 204
    assert (await attempt(client, anna, bruno)).status_code == 201


async def test_members_cannot_moderate_or_delete_others(
    client: httpx.AsyncClient, world: World, talking: tuple[Member, Member, Member]
) -> None:
    mod, anna, bruno = talking
    editor = await world.user("ed", role="editor")
    for caller in (anna, editor):
        refused = await moderate(client, caller, bruno, status="u")
        assert refused.status_code == 403, refused.text
    assert (await client.patch(MODERATE.format(bruno.id), content=b"junk")).status_code == 401
    for caller in (anna, mod):  # deleting another member is the member's or an admin's
        assert (await delete_user(client, caller, bruno, hard=True)).status_code == 403
    assert (await moderate(client, mod, mod, status="b")).status_code == 400
    admin = await world.user("root", role="admin")
    assert (await moderate(client, mod, admin, status="b")).status_code == 403
    assert (await moderate(client, mod, Member(10**9, "x", ""), status="b")).status_code == 404
    assert (await attempt(client, bruno, anna)).status_code == 201  # bruno untouched


async def test_a_soft_delete_signs_out_and_keeps_the_messages(
    client: httpx.AsyncClient, world: World, talking: tuple[Member, Member, Member]
) -> None:
    _, anna, bruno = talking
    assert (await delete_user(client, anna, anna)).status_code == 204
    assert (await client.get("/api/v2/user/me/", headers=anna.auth)).status_code == 401
    again = await delete_user(client, bruno, anna)
    assert again.status_code == 403
    admin = await world.user("root", role="admin")
    twice = await delete_user(client, admin, anna)
    assert twice.status_code == 400 and error_code(twice) == "already_deleted"
    page = await thread(client, bruno, user=anna.id)
    assert [m["message"] for m in page["results"]] == ["first"]
    taken = await client.post("/api/v2/sso/signup/", json={"username": "anna"}, headers=admin.auth)
    assert taken.status_code == 400


async def test_a_hard_delete_erases_messages_files_profile_and_tokens(
    client: httpx.AsyncClient, world: World, talking: tuple[Member, Member, Member]
) -> None:
    mod, anna, bruno = talking
    uploaded = await ui_upload(client, anna, b"%PDF-1.4 " + b"x" * 5000, "secret.pdf")
    assert (await ui_send(client, anna, bruno, uploaded.uuid)).status_code == 201
    await send(client, bruno, anna, text="bruno's own words")
    client_id, _ = await make_client(world)
    login = await client.post(
        "/oauth/token/",
        data={"grant_type": "password", "client_id": client_id, "username": "anna"}
        | {"password": "anna-pw"},
    )
    assert login.status_code == 200, login.text
    files_before = await world.sql("SELECT storage_key FROM files")

    assert (await moderate(client, mod, anna, status="d", hard=1)).status_code == 204

    page = await thread(client, bruno, user=anna.id)
    by_anna = [m for m in page["results"] if m["sender"]["id"] == anna.id]
    assert {m["message"] for m in by_anna} == {"Message deleted"}
    assert all(m["file"] is None for m in by_anna)
    assert "bruno's own words" in [m["message"] for m in page["results"]]
    assert (await fetch(client, uploaded.file_url)).status_code == 404
    assert await world.sql("SELECT id FROM files") == []
    media = world.app.state.dovecote.settings.data_dir
    assert files_before and not [p for p in media.rglob("*") if p.is_file() and "upload" in str(p)]
    user = (
        await world.sql(f"SELECT username, real_name, password_hash FROM users WHERE id={anna.id}")
    )[0]
    assert user == (f"deleted-{anna.id}", "", None)
    assert (
        await world.sql(
            f"SELECT * FROM follows WHERE follower_id={anna.id} OR followed_id={anna.id}"
        )
    ) == []
    assert (await client.get("/api/v2/user/me/", headers=anna.auth)).status_code == 401
    assert await world.sql("SELECT id FROM oauth_tokens WHERE revoked_at IS NULL") == []
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert (await client.get("/api/v2/user/me/", headers=bearer)).status_code == 401
    gone = await delete_user(client, anna, anna, hard=True)
    assert gone.status_code == 401
    assert (await moderate(client, mod, anna, status="u")).status_code == 404
    await assert_state_consistent(world)
    async with world.database.write_sessions() as session:
        assert await invariants.broken(session) == {}  # bruno's follow counters followed


async def test_each_action_is_logged_with_who_whom_and_what(
    client: httpx.AsyncClient,
    talking: tuple[Member, Member, Member],
    caplog: pytest.LogCaptureFixture,
) -> None:
    mod, anna, bruno = talking
    with caplog.at_level("INFO", logger="dovecote.moderation"):
        await moderate(client, mod, anna, status="b", days_blocked=1)
        await moderate(client, mod, anna, status="a")
        await delete_user(client, bruno, bruno, hard=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "dovecote.moderation"]
    assert lines[0].startswith(f"moderation: user {mod.id} block user {anna.id} until=")
    assert lines[1:] == [
        f"moderation: user {mod.id} activate user {anna.id}",
        f"moderation: user {bruno.id} hard_delete user {bruno.id} messages=0 files=0",
    ]


async def test_a_delete_closes_the_members_sockets_at_once_and_a_block_does_not(
    base: str, client: httpx.AsyncClient, talking: tuple[Member, Member, Member]
) -> None:
    mod, anna, bruno = talking  # sockets are rechecked only every 60 s: the kick closes these
    async with socket(base, anna.token) as blocked, socket(base, bruno.token) as deleted:
        assert (await moderate(client, mod, anna, status="b")).status_code == 204
        assert (await moderate(client, mod, bruno, status="d")).status_code == 204
        assert await closed_with(deleted) == 4401
        await blocked.send(HEARTBEAT)
        assert await blocked.recv() == HEARTBEAT
