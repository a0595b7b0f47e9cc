"""Sending a message, `POST /api/v2/pm/` (the seed; SPEC §3.1), from the attacker's side."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from dovecote.core.db import DatabaseUnavailable, UnitOfWork
from tests.conftest import Member, World
from tests.pm_support import post_message

PM = "/api/v2/pm/"
TABLES = ("messages", "threads", "thread_members", "thread_messages", "events")
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


async def nothing_stored(world: World) -> None:
    for table in TABLES:
        rows = await world.sql(f"SELECT COUNT(*) FROM {table}")
        assert rows[0][0] == 0, f"{table} is not empty"


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    codes = [e.get("code") for e in body["errors"]]
    codes += [m["code"] for e in body["errors"] for m in e.get("messages", [])]
    assert code in codes, body


def assert_field_error(response: httpx.Response, field: str, code: str | None = None) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["detail"]
    fields = {e["field"]: [m["code"] for m in e["messages"]] for e in body["errors"]}
    assert field in fields, body
    if code is not None:
        assert code in fields[field], body


@pytest.fixture
async def pair(world: World) -> tuple[Member, Member]:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)  # bruno follows anna: anna may write to bruno
    return anna, bruno


# --- the answer --------------------------------------------------------------------------------


async def test_seed_fields_and_later_fields(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    response = await post_message(client, anna, [bruno.id], "string")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= {
        "id",
        "sender_id",
        "sender",
        "message",
        "created_at",
        "status",
        "file",
        "thread_id",
        "receiver",
        "group",
    }
    assert isinstance(body["id"], int)
    assert body["sender_id"] == anna.id
    assert body["message"] == "string"
    assert ISO_WITH_OFFSET.match(body["created_at"]), body["created_at"]
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None
    assert body["status"] == "created"
    assert body["file"] is None
    assert body["group"] is None
    assert body["sender"]["id"] == anna.id and body["sender"]["username"] == "anna"
    assert body["receiver"]["id"] == bruno.id and body["receiver"]["username"] == "bruno"
    thread_ids = await world.sql("SELECT id FROM threads")
    assert [row[0] for row in thread_ids] == [body["thread_id"]]


async def test_text_is_stored_verbatim(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    text = "  <b>bold</b> & <script>alert(1)</script>\n\tçà 🕊️ \r\n"
    response = await post_message(client, anna, [bruno.id], text)
    assert response.status_code == 201, response.text
    assert response.json()["message"] == text
    assert (await world.sql("SELECT body FROM messages"))[0][0] == text


async def test_integer_form_equals_list_form(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    as_int = await post_message(client, anna, bruno.id)
    as_list = await post_message(client, anna, [bruno.id])
    assert as_int.status_code == as_list.status_code == 201
    assert as_int.json()["thread_id"] == as_list.json()["thread_id"]
    assert as_int.json()["receiver"]["id"] == bruno.id


async def test_form_encoded_body(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    carla = await world.user("carla")
    await world.follow(carla, anna)
    response = await client.post(
        PM, data={"recipients": str(bruno.id), "message": "by form"}, headers=anna.auth
    )
    assert response.status_code == 201, response.text
    assert response.json()["message"] == "by form"
    response = await client.post(
        PM.rstrip("/"),
        data={"recipients": [str(bruno.id), str(carla.id)], "message": "to both"},
        headers=anna.auth,
    )
    assert response.status_code == 201, response.text
    assert await world.sql("SELECT COUNT(*) FROM thread_messages") == [(3,)]


async def test_without_trailing_slash(
    client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    response = await client.post(
        "/api/v2/pm", json={"recipients": [bruno.id], "message": "hi"}, headers=anna.auth
    )
    assert response.status_code == 201, response.text


async def test_duplicate_recipients_are_stored_once(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    response = await post_message(client, anna, [bruno.id, bruno.id, bruno.id])
    assert response.status_code == 201, response.text
    assert await world.sql("SELECT COUNT(*) FROM messages") == [(1,)]
    assert await world.sql("SELECT COUNT(*) FROM thread_messages") == [(1,)]
    assert await world.sql("SELECT COUNT(*) FROM threads") == [(1,)]


async def test_multi_recipient_send_is_one_message_in_each_thread(
    client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno, carla = await world.user("anna"), await world.user("b"), await world.user("c")
    await world.follow(bruno, anna)
    await world.follow(carla, anna)
    response = await post_message(client, anna, [bruno.id, carla.id], "to you both")
    assert response.status_code == 201, response.text
    message_id = response.json()["id"]
    assert await world.sql("SELECT id FROM messages") == [(message_id,)]
    listed = await world.sql("SELECT thread_id, message_id FROM thread_messages ORDER BY thread_id")
    assert len(listed) == 2 and {row[1] for row in listed} == {message_id}
    for reader in (bruno, carla):
        thread = await client.get(PM, params={"user": anna.id}, headers=reader.auth)
        assert thread.status_code == 200, thread.text
        assert [m["id"] for m in thread.json()["results"]] == [message_id]


@pytest.mark.parametrize("settings_overrides", [{"pm_send_response": "list"}])
async def test_list_answer_has_one_element_per_recipient(
    client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno, carla = await world.user("anna"), await world.user("b"), await world.user("c")
    await world.follow(bruno, anna)
    await world.follow(carla, anna)
    response = await post_message(client, anna, [carla.id, bruno.id, carla.id])
    assert response.status_code == 201, response.text
    body = response.json()
    assert isinstance(body, list) and len(body) == 2
    assert [item["receiver"]["id"] for item in body] == [carla.id, bruno.id]
    assert len({item["id"] for item in body}) == 1
    assert len({item["thread_id"] for item in body}) == 2
    for item in body:
        assert item["sender_id"] == anna.id and item["status"] == "created"
        assert item["file"] is None and item["group"] is None
    single = await post_message(client, anna, bruno.id)
    assert isinstance(single.json(), list) and len(single.json()) == 1


async def test_second_send_reuses_the_thread(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    await world.follow(anna, bruno)
    first = await post_message(client, anna, [bruno.id])
    reply = await post_message(client, bruno, [anna.id])
    assert first.json()["thread_id"] == reply.json()["thread_id"]
    assert first.json()["id"] != reply.json()["id"]


# --- who may be written to ---------------------------------------------------------------------


async def test_to_a_non_follower(client: httpx.AsyncClient, world: World) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(anna, bruno)  # the wrong way round: anna follows bruno
    response = await post_message(client, anna, [bruno.id])
    assert_error(response, 403, "recipient_not_follower")
    assert str(bruno.id) in response.json()["detail"]
    await nothing_stored(world)


async def test_to_a_user_who_hid_the_sender(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    hide = await client.post(f"/api/v2/user/{anna.id}/hide/", headers=bruno.auth)
    assert hide.status_code == 204
    assert_error(await post_message(client, anna, [bruno.id]), 403, "recipient_blocked")
    await nothing_stored(world)
    # Unhiding lets messages through again.
    await client.post(f"/api/v2/user/{anna.id}/hide/", headers=bruno.auth)
    assert (await post_message(client, anna, [bruno.id])).status_code == 201


async def test_hiding_someone_does_not_stop_them_receiving(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    await client.post(f"/api/v2/user/{bruno.id}/hide/", headers=anna.auth)
    assert (await post_message(client, anna, [bruno.id])).status_code == 201


async def test_to_a_deleted_user(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    await world.sql("UPDATE users SET deleted = true WHERE id = :id", id=bruno.id)
    assert_error(await post_message(client, anna, [bruno.id]), 403, "recipient_deleted")
    await nothing_stored(world)


async def test_to_a_deactivated_user(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    await world.sql("UPDATE users SET is_active = false WHERE id = :id", id=bruno.id)
    assert_error(await post_message(client, anna, [bruno.id]), 403, "recipient_deleted")
    await nothing_stored(world)


async def test_to_yourself(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    await world.follow(anna, anna)
    assert_field_error(await post_message(client, anna, [anna.id]), "recipients", "self")
    assert_field_error(await post_message(client, anna, anna.id), "recipients", "self")
    await nothing_stored(world)


@pytest.mark.parametrize("unknown", [424242, 2**53 - 1])  # the largest id a JS client holds
async def test_to_an_unknown_id(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member], unknown: int
) -> None:
    anna, _ = pair
    assert_field_error(await post_message(client, anna, [unknown]), "recipients", "does_not_exist")
    await nothing_stored(world)


async def test_mixed_allowed_and_refused_recipients_store_nothing(
    client: httpx.AsyncClient, world: World
) -> None:
    anna = await world.user("anna")
    fans = [await world.user(f"fan{i}") for i in range(3)]
    for fan in fans:
        await world.follow(fan, anna)
    stranger, hider, gone = (
        await world.user("stranger"),
        await world.user("hider"),
        await world.user("gone"),
    )
    await world.follow(hider, anna)
    await client.post(f"/api/v2/user/{anna.id}/hide/", headers=hider.auth)
    await world.follow(gone, anna)
    await world.sql("UPDATE users SET deleted = true WHERE id = :id", id=gone.id)
    ids = [f.id for f in fans]
    cases = [
        ([*ids, stranger.id], 403, "recipient_not_follower"),
        ([stranger.id, *ids], 403, "recipient_not_follower"),
        ([ids[0], hider.id, ids[1]], 403, "recipient_blocked"),
        ([*ids, gone.id], 403, "recipient_deleted"),
        ([*ids, 999_999], 400, "does_not_exist"),
        ([*ids, anna.id], 400, "self"),
    ]
    for recipients, status, code in cases:
        assert_error(await post_message(client, anna, recipients), status, code)
        await nothing_stored(world)
    assert await world.sql("SELECT COUNT(*) FROM users WHERE last_event_id > 0") == [(0,)]


@pytest.mark.parametrize("role", ["admin", "moderator", "editor"])
async def test_staff_may_write_to_anyone(
    client: httpx.AsyncClient, world: World, role: str
) -> None:
    boss, nobody = await world.user("boss", role=role), await world.user("nobody")
    response = await post_message(client, boss, [nobody.id])
    assert response.status_code == 201, response.text


async def test_staff_may_not_write_to_deleted_or_hiding_users(
    client: httpx.AsyncClient, world: World
) -> None:
    boss = await world.user("boss", role="admin")
    hider, gone = await world.user("hider"), await world.user("gone")
    await client.post(f"/api/v2/user/{boss.id}/hide/", headers=hider.auth)
    await world.sql("UPDATE users SET deleted = true WHERE id = :id", id=gone.id)
    assert_error(await post_message(client, boss, [hider.id]), 403, "recipient_blocked")
    assert_error(await post_message(client, boss, [gone.id]), 403, "recipient_deleted")
    await nothing_stored(world)


# --- the text ----------------------------------------------------------------------------------


@pytest.mark.parametrize("message", ["", "   ", "\n\t \r\n", None])
async def test_empty_messages_are_refused(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member], message: Any
) -> None:
    anna, bruno = pair
    assert_field_error(await post_message(client, anna, [bruno.id], message), "message", "required")
    await nothing_stored(world)


async def test_missing_message(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    response = await client.post(PM, json={"recipients": [bruno.id]}, headers=anna.auth)
    assert_field_error(response, "message", "required")
    await nothing_stored(world)


@pytest.mark.parametrize("message", [42, 4.2, True, ["hi"], {"text": "hi"}, [], {}])
async def test_non_string_messages_are_refused(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member], message: Any
) -> None:
    anna, bruno = pair
    assert_field_error(await post_message(client, anna, [bruno.id], message), "message")
    await nothing_stored(world)


async def test_message_length_limit(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    assert_field_error(
        await post_message(client, anna, [bruno.id], "x" * 10_001), "message", "max_length"
    )
    await nothing_stored(world)
    # The limit counts characters, not bytes.
    response = await post_message(client, anna, [bruno.id], "é" * 10_000)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("settings_overrides", [{"pm_message_max_length": 5}])
async def test_message_length_limit_is_configurable(
    client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    assert (await post_message(client, anna, [bruno.id], "12345")).status_code == 201
    assert_field_error(
        await post_message(client, anna, [bruno.id], "123456"), "message", "max_length"
    )


@pytest.mark.parametrize("message", ["\x00", "a\x00b", "\x00" * 3])
async def test_nul_characters_are_refused(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member], message: str
) -> None:
    anna, bruno = pair
    assert_field_error(await post_message(client, anna, [bruno.id], message), "message")
    await nothing_stored(world)


async def test_lone_surrogates_are_refused(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    body = b'{"recipients": [%d], "message": "half a pair: \\ud83d"}' % bruno.id
    response = await client.post(
        PM, content=body, headers={**anna.auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    await nothing_stored(world)


# --- the recipients ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "recipients",
    [
        "bruno",
        "",
        "1; DROP TABLE users",
        "²",
        1.5,  # 2.0 is accepted: JSON Schema counts an integral number as an integer
        True,
        False,
        {"id": 2},
        {},
        [[2]],
        [2, [3]],
        ["two"],
        [None],
        [True],
        [1.5],
        [0],
        [-2],
        [2**63],
        2**64,
        -1,
        0,
    ],
    ids=repr,
)
async def test_recipients_of_the_wrong_type(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member], recipients: Any
) -> None:
    anna, _ = pair
    assert_field_error(await post_message(client, anna, recipients), "recipients")
    await nothing_stored(world)


@pytest.mark.parametrize("recipients", [[], None])
async def test_no_recipients(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member], recipients: Any
) -> None:
    anna, _ = pair
    assert_field_error(await post_message(client, anna, recipients), "recipients")
    response = await client.post(PM, json={"message": "to nobody"}, headers=anna.auth)
    assert_field_error(response, "recipients", "required")
    await nothing_stored(world)


@pytest.mark.parametrize("settings_overrides", [{"pm_max_recipients": 3}])
async def test_too_many_recipients(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, _ = pair
    assert_field_error(
        await post_message(client, anna, [11, 12, 13, 14]), "recipients", "max_length"
    )


@pytest.mark.parametrize(
    "content, content_type",
    [
        (b"", "application/json"),
        (b"not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"text"', "application/json"),
        (b"null", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"recipients=abc&message=hi", "application/x-www-form-urlencoded"),
        (b"message=hi", "application/x-www-form-urlencoded"),
        (b"--b\r\ngarbage", "multipart/form-data"),
        (b"recipients=2&message=hi", "text/plain"),
    ],
)
async def test_malformed_bodies(
    client: httpx.AsyncClient,
    world: World,
    pair: tuple[Member, Member],
    content: bytes,
    content_type: str,
) -> None:
    anna, _ = pair
    response = await client.post(
        PM, content=content, headers={**anna.auth, "Content-Type": content_type}
    )
    assert response.status_code == 400, response.text
    assert response.json()["detail"] and response.json()["errors"]
    await nothing_stored(world)


async def test_json_sent_as_a_form_is_told_about_the_content_type(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    message = (
        "The body is JSON but its Content-Type is application/x-www-form-urlencoded: "
        "send it with the header Content-Type: application/json."
    )

    response = await client.post(  # what `curl -d '{...}'` sends without -H Content-Type
        PM,
        content=b' {"recipients": [%d], "message": "hi"}' % bruno.id,
        headers={**anna.auth, "Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": message,
        "errors": [
            {
                "field": "non_field_errors",
                "messages": [{"code": "json_sent_as_form", "message": message}],
            }
        ],
    }
    await nothing_stored(world)


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
async def test_oversized_bodies_are_413(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member], content_type: str
) -> None:
    anna, bruno = pair
    filler = "x" * 2_000_000
    content = (
        b'{"recipients": [%d], "message": "%s"}' % (bruno.id, filler.encode())
        if content_type == "application/json"
        else f"recipients={bruno.id}&message={filler}".encode()
    )
    response = await client.post(
        PM, content=content, headers={**anna.auth, "Content-Type": content_type}
    )
    assert_error(response, 413, "body_too_large")
    await nothing_stored(world)


async def test_attachments_and_groups_are_refused_cleanly(
    client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    for extra, field, code in (
        ({"group": 1}, "group", "groups_disabled"),
        ({"group": "x"}, "group", "invalid"),
        ({"file_uuid": 5}, "file_uuid", "invalid"),
    ):
        body = {"recipients": [bruno.id], "message": "hi", **extra}
        response = await client.post(PM, json=body, headers=anna.auth)
        assert_field_error(response, field, code)
    await nothing_stored(world)


# --- a commit that fails -----------------------------------------------------------------------


def _sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    "failure, status",
    [
        (OperationalError("COMMIT", {}, _sqlite_error("disk I/O error", 10)), 503),  # IOERR
        (DatabaseUnavailable("database unavailable"), 503),
        (RuntimeError("boom"), 500),
        (OperationalError("COMMIT", {}, _sqlite_error('near "ELSE": syntax error', 1)), 500),
        (TimeoutError("not the database's"), 500),
    ],
    ids=["database", "database-layer", "bug", "sql-bug", "bare-timeout"],
)
async def test_a_send_that_fails_to_commit_is_never_acknowledged(
    client: httpx.AsyncClient,
    world: World,
    pair: tuple[Member, Member],
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
    status: int,
) -> None:
    anna, bruno = pair
    broker = world.app.state.dovecote.broker
    published: list[Any] = []
    publish = broker.publish

    async def recording_publish(events: Any) -> None:
        published.append(events)
        await publish(events)

    monkeypatch.setattr(broker, "publish", recording_publish)

    async def failing_commit(self: UnitOfWork) -> Any:
        if self._session is not None and self._session.in_transaction():
            await self._session.flush()
            raise failure
        return []

    monkeypatch.setattr(UnitOfWork, "commit", failing_commit)
    response = await post_message(client, anna, [bruno.id])
    assert response.status_code == status, response.text
    body = response.json()
    assert body["detail"] and body["errors"][0]["code"]
    monkeypatch.undo()
    await nothing_stored(world)
    assert published == [], "no live event for a message that was never stored"
    # And the server is still usable afterwards.
    assert (await post_message(client, anna, [bruno.id])).status_code == 201
