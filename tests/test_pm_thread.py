"""A thread's messages, GET /api/v2/pm/?thread=ID | ?user=ID (SPEC §3.3), and one message,
GET /api/v2/pm/{id}/ (§3.4)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import Member, World
from tests.pm_support import PM, error_code, error_field, inbox, send, statuses, texts, thread


@pytest.fixture
async def pair(world: World) -> tuple[Member, Member]:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.mutual(anna, bruno)
    return anna, bruno


async def conversation(
    client: httpx.AsyncClient, anna: Member, bruno: Member, n: int
) -> tuple[int, list[int]]:
    """`n` messages, alternating anna -> bruno and bruno -> anna, texts m1..mn."""
    ids = []
    for i in range(1, n + 1):
        sender, recipient = (anna, bruno) if i % 2 else (bruno, anna)
        ids.append((await send(client, sender, recipient, text=f"m{i}"))["id"])
    thread_id = (await inbox(client, anna))["results"][0]["id"]
    return thread_id, ids


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def follow(client: httpx.AsyncClient, member: Member, url: str) -> Any:
    response = await client.get(url, headers=member.auth)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_thread_lists_its_messages_oldest_first(
    client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    thread_id, ids = await conversation(client, anna, bruno, 3)

    page = await thread(client, anna, thread=thread_id)

    assert page["count"] == 3
    assert texts(page) == ["m1", "m2", "m3"]
    assert [m["id"] for m in page["results"]] == ids
    first, second = page["results"][0], page["results"][1]
    assert first["sender_id"] == anna.id and first["receiver"]["id"] == bruno.id
    assert second["sender_id"] == bruno.id and second["receiver"]["id"] == anna.id
    assert second["sender"]["username"] == "bruno"
    assert all(m["thread_id"] == thread_id for m in page["results"])
    assert all("group" in m and m["group"] is None for m in page["results"])
    assert all(m["status"] == "created" and m["file"] is None for m in page["results"])
    assert page["next"] is None and page["previous"] is None


async def test_the_thread_with_a_user_is_the_same_thread(
    client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    thread_id, _ = await conversation(client, anna, bruno, 3)

    by_thread = await thread(client, anna, thread=thread_id)
    by_user = await thread(client, anna, user=bruno.id)
    from_bruno = await thread(client, bruno, user=anna.id)

    assert by_user["results"] == by_thread["results"]
    assert texts(from_bruno) == ["m1", "m2", "m3"]


async def test_no_thread_yet_with_a_user_is_an_empty_page(
    client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    empty = {"count": 0, "next": None, "previous": None, "results": []}

    assert await thread(client, anna, user=bruno.id) == empty
    assert await thread(client, anna, user=anna.id) == empty
    assert await thread(client, anna, user=10**9) == empty


async def test_without_a_cursor_the_page_holds_the_newest_messages(
    client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    thread_id, ids = await conversation(client, anna, bruno, 7)

    page = await thread(client, anna, thread=thread_id, limit=3)

    assert page["count"] == 7
    assert texts(page) == ["m5", "m6", "m7"]
    assert page["previous"] is None
    assert page["next"].startswith("http://testserver/api/v2/pm/?")
    assert query(page["next"]) == {
        "thread": str(thread_id),
        "limit": "3",
        "before_message": str(ids[4]),
    }


async def test_paging_backwards_with_before_message_reaches_the_first_message(
    client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    _, ids = await conversation(client, anna, bruno, 7)

    pages = [await thread(client, bruno, user=anna.id, limit=3)]
    while pages[-1]["next"]:
        pages.append(await follow(client, bruno, pages[-1]["next"]))

    assert [texts(p) for p in pages] == [["m5", "m6", "m7"], ["m2", "m3", "m4"], ["m1"]]
    assert [p["count"] for p in pages] == [7, 7, 7]
    # going back up: `previous` holds the newer messages, oldest first from there
    assert query(pages[2]["previous"])["from_message"] == str(ids[0] + 1)
    assert texts(await follow(client, bruno, pages[2]["previous"])) == ["m2", "m3", "m4"]
    assert texts(await follow(client, bruno, pages[1]["previous"])) == ["m5", "m6", "m7"]


async def test_the_ui_rewrites_before_message_in_the_next_url(
    client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    thread_id, ids = await conversation(client, anna, bruno, 5)

    page = await thread(client, anna, thread=thread_id, before_message=ids[3])

    assert texts(page) == ["m1", "m2", "m3"]
    assert page["next"] is None
    assert query(page["previous"])["from_message"] == str(ids[2] + 1)


async def test_from_message_reads_forwards_from_a_message(
    client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    thread_id, ids = await conversation(client, anna, bruno, 7)

    page = await thread(client, anna, thread=thread_id, from_message=ids[2], limit=2)

    assert texts(page) == ["m3", "m4"]
    assert query(page["next"])["before_message"] == str(ids[2])
    assert "from_message" not in query(page["next"])
    assert query(page["previous"])["from_message"] == str(ids[3] + 1)
    assert texts(await follow(client, anna, page["next"])) == ["m1", "m2"]
    rest = await follow(client, anna, page["previous"])
    assert texts(rest) == ["m5", "m6"]
    assert texts(await follow(client, anna, rest["previous"])) == ["m7"]

    first = await thread(client, anna, thread=thread_id, from_message=ids[0], limit=2)
    assert texts(first) == ["m1", "m2"] and first["next"] is None


async def test_cursors_combine_with_offset(
    client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    thread_id, ids = await conversation(client, anna, bruno, 9)

    older = await thread(client, anna, thread=thread_id, before_message=ids[8], limit=2, offset=3)
    newer = await thread(client, anna, thread=thread_id, from_message=ids[1], limit=2, offset=3)
    plain = await thread(client, anna, thread=thread_id, limit=2, offset=2)

    assert texts(older) == ["m4", "m5"]
    assert texts(newer) == ["m5", "m6"]
    assert texts(plain) == ["m6", "m7"]
    assert "offset" not in query(plain["next"])
    assert texts(await follow(client, anna, plain["next"])) == ["m4", "m5"]


async def test_links_honour_the_request_host(
    client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    thread_id, _ = await conversation(client, anna, bruno, 3)

    response = await client.get(
        PM,
        params={"thread": thread_id, "limit": 1},
        headers={**anna.auth, "Host": "chat.example:8443"},
    )

    assert response.json()["next"].startswith("http://chat.example:8443/api/v2/pm/?")


class TestBehindAPublicURL:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"public_url": "https://community.example/messaging/"}

    async def test_links_use_the_public_url(
        self, client: httpx.AsyncClient, pair: tuple[Member, Member]
    ) -> None:
        anna, bruno = pair
        thread_id, ids = await conversation(client, anna, bruno, 3)

        page = await thread(client, anna, thread=thread_id, limit=1, before_message=ids[2])
        listing = await inbox(client, anna, limit=1, offset=1)

        assert page["next"].startswith("https://community.example/messaging/api/v2/pm/?")
        assert page["previous"].startswith("https://community.example/messaging/api/v2/pm/?")
        assert listing["previous"] == "https://community.example/messaging/api/v2/pm/?limit=1"


async def test_reading_the_newest_page_marks_the_thread_seen(
    client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    thread_id, ids = await conversation(client, anna, bruno, 5)  # m5 from anna: new for bruno
    assert statuses(await inbox(client, bruno)) == {thread_id: "new"}

    await thread(client, bruno, thread=thread_id, before_message=ids[4], limit=2)
    await thread(client, bruno, thread=thread_id, offset=1)
    await thread(client, bruno, thread=thread_id, from_message=ids[0], limit=2)
    assert statuses(await inbox(client, bruno)) == {thread_id: "new"}

    await thread(client, bruno, thread=thread_id, limit=1)
    assert statuses(await inbox(client, bruno)) == {thread_id: "seen"}

    await send(client, anna, bruno, text="m6")
    assert statuses(await inbox(client, bruno)) == {thread_id: "new"}
    # a forward page that reaches the newest message shows it, so it counts as read
    await thread(client, bruno, user=anna.id, from_message=ids[3])
    assert statuses(await inbox(client, bruno)) == {thread_id: "seen"}


async def test_reading_does_not_change_the_other_sides_status(
    client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    thread_id, _ = await conversation(client, anna, bruno, 2)  # m2 from bruno: new for anna

    await thread(client, bruno, thread=thread_id)
    await thread(client, anna, user=bruno.id, before_message=10**6)

    assert statuses(await inbox(client, anna)) == {thread_id: "seen"}
    await send(client, anna, bruno)
    await thread(client, anna, thread=thread_id)
    assert statuses(await inbox(client, bruno)) == {thread_id: "new"}


async def test_one_message_is_shown_to_its_participants(
    client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    sent = await send(client, anna, bruno, text="hello")

    for member in (anna, bruno):
        response = await client.get(f"{PM}{sent['id']}/", headers=member.auth)
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == sent["id"]
        assert body["message"] == "hello"
        assert body["thread_id"] == sent["thread_id"]
        assert body["sender"]["id"] == anna.id
        assert body["receiver"]["id"] == bruno.id
        assert body["group"] is None
    no_slash = await client.get(f"{PM}{sent['id']}", headers=bruno.auth)
    assert no_slash.status_code == 200


# --- from the attacker's side ----------------------------------------------------------------


async def test_someone_elses_thread_is_not_found_like_a_missing_one(
    client: httpx.AsyncClient, pair: tuple[Member, Member], world: World
) -> None:
    anna, bruno = pair
    mallory = await world.user("mallory")
    thread_id, _ = await conversation(client, anna, bruno, 2)

    theirs = await client.get(PM, params={"thread": thread_id}, headers=mallory.auth)
    missing = await client.get(PM, params={"thread": thread_id + 1000}, headers=mallory.auth)

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    assert error_code(theirs) == "thread_not_found"
    # naming one of them as the other side shows nothing either
    assert (await thread(client, mallory, user=anna.id))["results"] == []


async def test_someone_elses_message_is_not_found_like_a_missing_one(
    client: httpx.AsyncClient, pair: tuple[Member, Member], world: World
) -> None:
    anna, bruno = pair
    mallory = await world.user("mallory")
    sent = await send(client, anna, bruno)

    theirs = await client.get(f"{PM}{sent['id']}/", headers=mallory.auth)
    missing = await client.get(f"{PM}{sent['id'] + 1000}/", headers=mallory.auth)

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"thread": "abc"}, "thread"),
        ({"thread": "0"}, "thread"),
        ({"thread": "-3"}, "thread"),
        ({"thread": str(2**63)}, "thread"),
        ({"thread": "1e3"}, "thread"),
        ({"user": "x"}, "user"),
        ({"user": str(10**30)}, "user"),
        ({"thread": "1", "user": "2"}, "thread"),
        ({"thread": "1", "before_message": "zz"}, "before_message"),
        ({"thread": "1", "from_message": str(2**64)}, "from_message"),
        ({"thread": "1", "before_message": "5", "from_message": "2"}, "before_message"),
        ({"thread": "1", "limit": "-1"}, "limit"),
        ({"group": "1"}, "group"),
    ],
)
async def test_bad_thread_queries_get_a_400_naming_the_field(
    client: httpx.AsyncClient, pair: tuple[Member, Member], params: dict[str, str], field: str
) -> None:
    anna, _ = pair

    response = await client.get(PM, params=params, headers=anna.auth)

    assert response.status_code == 400, response.text
    assert error_field(response) == field


@pytest.mark.parametrize("path", ["abc", "0", "-1", str(2**63), "1.5"])
async def test_bad_message_ids_name_no_message(
    client: httpx.AsyncClient, pair: tuple[Member, Member], path: str
) -> None:
    anna, _ = pair

    response = await client.get(f"{PM}{path}/", headers=anna.auth)

    # An id in a path names an object; one that is not a positive id the API can hold names
    # none: the 404 of an unknown path, whatever its form (SPEC §2), never a 400 for some forms.
    assert response.status_code == 404, response.text
    assert error_code(response) == "not_found"


async def test_undefined_counts_as_absent(
    client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    thread_id, _ = await conversation(client, anna, bruno, 2)

    as_inbox = await thread(client, anna, user="undefined")
    as_thread = await thread(
        client, anna, thread=thread_id, user="undefined", before_message="undefined"
    )

    assert as_inbox["results"][0]["headline"] == "m2"
    assert texts(as_thread) == ["m1", "m2"]


async def test_cursors_past_either_end_give_an_empty_page(
    client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    thread_id, ids = await conversation(client, anna, bruno, 3)

    before_all = await thread(client, anna, thread=thread_id, before_message=ids[0])
    after_all = await thread(client, anna, thread=thread_id, from_message=ids[-1] + 1)
    far = await thread(client, anna, thread=thread_id, offset=2**40, limit=2**40)

    for page in (before_all, after_all, far):
        assert page == {"count": 3, "next": None, "previous": None, "results": []}
