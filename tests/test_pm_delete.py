"""Deleting: a message (SPEC §3.5, the delete window) and a thread for oneself (§3.6)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from dovecote.core import clock
from tests.conftest import Member, World
from tests.pm_support import (
    PM,
    error_code,
    error_field,
    headlines,
    inbox,
    send,
    statuses,
    texts,
    thread,
)


@pytest.fixture
async def trio(world: World) -> tuple[Member, Member, Member]:
    anna, bruno, carla = (
        await world.user("anna"),
        await world.user("bruno"),
        await world.user("carla"),
    )
    await world.mutual(anna, bruno, carla)
    return anna, bruno, carla


async def delete(client: httpx.AsyncClient, member: Member, url: str, **params: Any) -> int:
    response = await client.delete(url, params=params, headers=member.auth)
    if response.status_code == 204:
        assert response.content == b""
    return response.status_code


async def assert_counts_add_up(client: httpx.AsyncClient, *members: Member) -> None:
    """The stored inbox count (users.inbox_count) equals the threads actually listed."""
    for member in members:
        page = await inbox(client, member, limit=100)
        assert page["count"] == len(page["results"]), member.username


async def test_a_message_deleted_within_the_window_is_gone_for_everyone(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, _ = trio
    await send(client, anna, bruno, text="keep")
    oops = await send(client, anna, bruno, text="oops")
    clock.advance(timedelta(seconds=59))

    assert await delete(client, anna, f"{PM}{oops['id']}/") == 204

    for member, other in ((anna, bruno), (bruno, anna)):
        page = await thread(client, member, user=other.id)
        assert texts(page) == ["keep"] and page["count"] == 1
        assert headlines(await inbox(client, member)) == ["keep"]
        gone = await client.get(f"{PM}{oops['id']}/", headers=member.auth)
        assert gone.status_code == 404
    await assert_counts_add_up(client, anna, bruno)


async def test_a_message_deleted_after_the_window_stays_as_a_placeholder(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member], world: World
) -> None:
    anna, bruno, _ = trio
    await send(client, anna, bruno, text="first")
    late = await send(client, anna, bruno, text="regret")
    clock.advance(timedelta(seconds=60))

    assert await delete(client, anna, f"{PM}{late['id']}") == 204

    for member, other in ((anna, bruno), (bruno, anna)):
        page = await thread(client, member, user=other.id)
        assert page["count"] == 2
        assert texts(page) == ["first", "Message deleted"]
        hidden = page["results"][1]
        assert hidden["status"] == "hidden" and hidden["file"] is None
        assert headlines(await inbox(client, member)) == ["Message deleted"]
        one = (await client.get(f"{PM}{late['id']}/", headers=member.auth)).json()
        assert one["message"] == "Message deleted" and one["status"] == "hidden"
    [row] = await world.sql("SELECT body, file_id FROM messages WHERE id = :id", id=late["id"])
    assert tuple(row) == ("", None)  # the text itself is gone, not only masked


async def test_deleting_again_changes_nothing(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, _ = trio
    quick = await send(client, anna, bruno, text="quick")
    await send(client, anna, bruno, text="slow")
    assert await delete(client, anna, f"{PM}{quick['id']}/") == 204
    assert await delete(client, anna, f"{PM}{quick['id']}/") == 204

    clock.advance(timedelta(minutes=5))
    slow_id = (await thread(client, anna, user=bruno.id))["results"][0]["id"]
    assert await delete(client, anna, f"{PM}{slow_id}/") == 204
    assert await delete(client, anna, f"{PM}{slow_id}/") == 204

    assert texts(await thread(client, bruno, user=anna.id)) == ["Message deleted"]
    await assert_counts_add_up(client, anna, bruno)


async def test_only_the_sender_may_delete_a_message(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member], world: World
) -> None:
    anna, bruno, carla = trio
    sent = await send(client, anna, bruno, text="mine")
    mallory = await world.user("mallory")

    as_recipient = await client.delete(f"{PM}{sent['id']}/", headers=bruno.auth)
    as_stranger = await client.delete(f"{PM}{sent['id']}/", headers=carla.auth)
    as_nobody = await client.delete(f"{PM}{sent['id']}/", headers=mallory.auth)
    missing = await client.delete(f"{PM}{sent['id'] + 99}/", headers=mallory.auth)

    assert as_recipient.status_code == 403
    assert error_code(as_recipient) == "not_sender"
    assert as_stranger.status_code == as_nobody.status_code == missing.status_code == 404
    assert as_stranger.json() == missing.json()
    assert texts(await thread(client, bruno, user=anna.id)) == ["mine"]


async def test_a_deleted_message_is_not_found_for_the_other_side(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, _ = trio
    sent = await send(client, anna, bruno)
    await delete(client, anna, f"{PM}{sent['id']}/")

    response = await client.delete(f"{PM}{sent['id']}/", headers=bruno.auth)

    assert response.status_code == 404


@pytest.mark.parametrize("path", ["abc", "0", "-7", str(2**63), "1.0"])
async def test_bad_message_ids_on_delete_name_no_message(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member], path: str
) -> None:
    anna, _, _ = trio

    response = await client.delete(f"{PM}{path}/", headers=anna.auth)

    # An id in a path names an object; one that is not a positive id the API can hold names
    # none: the 404 of an unknown path, whatever its form (SPEC §2), never a 400 for some forms.
    assert response.status_code == 404, response.text
    assert error_code(response) == "not_found"


async def test_deleting_the_only_message_empties_both_inboxes_until_the_next(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, carla = trio
    await send(client, anna, carla, text="other thread")
    sent = await send(client, anna, bruno, text="only")

    await delete(client, anna, f"{PM}{sent['id']}/")

    assert headlines(await inbox(client, anna)) == ["other thread"]
    assert (await inbox(client, bruno))["count"] == 0
    await assert_counts_add_up(client, anna, bruno, carla)

    again = await send(client, bruno, anna, text="back")
    assert again["thread_id"] == sent["thread_id"]
    assert headlines(await inbox(client, anna)) == ["back", "other thread"]
    assert statuses(await inbox(client, anna))[sent["thread_id"]] == "new"
    assert texts(await thread(client, bruno, user=anna.id)) == ["back"]
    await assert_counts_add_up(client, anna, bruno, carla)


async def test_deleting_an_unread_message_makes_the_thread_seen_again(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, _ = trio
    first = await send(client, anna, bruno, text="read this")
    await thread(client, bruno, user=anna.id)
    oops = await send(client, anna, bruno, text="not this")
    assert statuses(await inbox(client, bruno)) == {first["thread_id"]: "new"}

    await delete(client, anna, f"{PM}{oops['id']}/")

    assert statuses(await inbox(client, bruno)) == {first["thread_id"]: "seen"}


async def test_a_message_sent_to_two_people_is_deleted_from_both_threads(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, carla = trio
    await send(client, anna, bruno, text="hi bruno")
    both = await send(client, anna, bruno, carla, text="to both")

    await delete(client, anna, f"{PM}{both['id']}/")

    assert texts(await thread(client, bruno, user=anna.id)) == ["hi bruno"]
    assert (await inbox(client, carla))["count"] == 0
    assert headlines(await inbox(client, anna)) == ["hi bruno"]
    await assert_counts_add_up(client, anna, bruno, carla)


class TestAShorterWindow:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"pm_delete_window_seconds": 5, "pm_deleted_placeholder": "(removed)"}

    async def test_the_window_and_placeholder_follow_the_settings(
        self, client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
    ) -> None:
        anna, bruno, _ = trio
        early = await send(client, anna, bruno, text="early")
        late = await send(client, anna, bruno, text="late")
        clock.advance(timedelta(seconds=4))
        await delete(client, anna, f"{PM}{late['id']}/")  # 4 s old: deleted
        clock.advance(timedelta(seconds=1))
        await delete(client, anna, f"{PM}{early['id']}/")  # 5 s old: hidden

        page = await thread(client, bruno, user=anna.id)
        assert texts(page) == ["(removed)"]
        assert page["results"][0]["status"] == "hidden"


# --- deleting a thread for oneself -----------------------------------------------------------


async def test_deleting_a_thread_hides_it_from_the_caller_only(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, carla = trio
    old = await send(client, anna, bruno, text="old")
    await send(client, bruno, anna, text="older reply")
    await send(client, anna, carla, text="carla")
    thread_id = old["thread_id"]

    assert await delete(client, anna, PM, thread=thread_id) == 204

    assert headlines(await inbox(client, anna)) == ["carla"]
    empty = await thread(client, anna, thread=thread_id)
    assert empty["count"] == 0 and empty["results"] == []
    assert (await thread(client, anna, user=bruno.id))["results"] == []
    assert (await client.get(f"{PM}{old['id']}/", headers=anna.auth)).status_code == 404
    bruno_side = await thread(client, bruno, thread=thread_id)
    assert texts(bruno_side) == ["old", "older reply"]
    assert (await client.get(f"{PM}{old['id']}/", headers=bruno.auth)).status_code == 200
    await assert_counts_add_up(client, anna, bruno, carla)


async def test_a_later_message_revives_the_thread_with_only_newer_messages(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, _ = trio
    thread_id = (await send(client, anna, bruno, text="before"))["thread_id"]
    await delete(client, bruno, PM, user=anna.id)
    assert (await inbox(client, bruno))["count"] == 0

    await send(client, anna, bruno, text="after")

    page = await inbox(client, bruno)
    assert headlines(page) == ["after"] and statuses(page) == {thread_id: "new"}
    listed = await thread(client, bruno, thread=thread_id)
    assert texts(listed) == ["after"] and listed["count"] == 1
    assert texts(await thread(client, anna, thread=thread_id)) == ["before", "after"]
    await assert_counts_add_up(client, anna, bruno)


async def test_the_caller_revives_their_own_thread_by_writing(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, _ = trio
    thread_id = (await send(client, bruno, anna, text="unread"))["thread_id"]
    await delete(client, anna, PM, thread=thread_id)

    await send(client, anna, bruno, text="hello again")

    page = await inbox(client, anna)
    assert statuses(page) == {thread_id: "seen"}
    assert texts(await thread(client, anna, thread=thread_id)) == ["hello again"]
    await assert_counts_add_up(client, anna, bruno)


async def test_deleting_a_thread_twice_is_harmless(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, _ = trio
    thread_id = (await send(client, anna, bruno))["thread_id"]

    assert await delete(client, anna, PM, thread=thread_id) == 204
    assert await delete(client, anna, PM, thread=thread_id) == 204
    assert await delete(client, anna, f"{PM[:-1]}", user=bruno.id) == 204

    await assert_counts_add_up(client, anna, bruno)
    assert (await inbox(client, bruno))["count"] == 1


async def test_a_deleted_thread_stays_away_when_an_old_message_is_deleted(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, _ = trio
    first = await send(client, anna, bruno, text="one")
    second = await send(client, anna, bruno, text="two")
    await delete(client, bruno, PM, user=anna.id)

    await delete(client, anna, f"{PM}{second['id']}/")  # within the window
    await delete(client, anna, f"{PM}{first['id']}/")

    assert (await inbox(client, bruno))["count"] == 0
    assert (await inbox(client, anna))["count"] == 0
    await assert_counts_add_up(client, anna, bruno)
    await send(client, anna, bruno, text="three")
    assert texts(await thread(client, bruno, user=anna.id)) == ["three"]
    await assert_counts_add_up(client, anna, bruno)


async def test_someone_elses_thread_cannot_be_deleted(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, carla = trio
    thread_id = (await send(client, anna, bruno))["thread_id"]

    theirs = await client.delete(PM, params={"thread": thread_id}, headers=carla.auth)
    missing = await client.delete(PM, params={"thread": thread_id + 50}, headers=carla.auth)
    no_thread = await client.delete(PM, params={"user": anna.id}, headers=carla.auth)

    assert theirs.status_code == missing.status_code == no_thread.status_code == 404
    assert theirs.json() == missing.json()
    assert error_code(no_thread) == "thread_not_found"
    assert (await inbox(client, anna))["count"] == 1
    assert (await inbox(client, bruno))["count"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "thread"),
        ({"user": "undefined"}, "thread"),
        ({"thread": "nope"}, "thread"),
        ({"thread": "-1"}, "thread"),
        ({"user": str(2**63)}, "user"),
        ({"thread": "1", "user": "2"}, "thread"),
    ],
)
async def test_bad_thread_deletes_get_a_400_naming_the_field(
    client: httpx.AsyncClient,
    trio: tuple[Member, Member, Member],
    params: dict[str, str],
    field: str,
) -> None:
    anna, _, _ = trio

    response = await client.delete(PM, params=params, headers=anna.auth)

    assert response.status_code == 400, response.text
    assert error_field(response) == field
