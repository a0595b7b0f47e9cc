"""Reads whose cost must not grow with the community: hidden ids and the people search."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dovecote.core import clock
from dovecote.users import repository
from tests.conftest import World
from tests.pm_support import error_code, error_field, get_ok

USER = "/api/v2/user"
SEARCH = "/api/v2/pm/search/"
CAP = 3


def names(page: dict[str, Any]) -> list[str]:
    return [u["username"] for u in page["results"]]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"user_max_hidden": CAP}


async def test_hiding_stops_at_the_cap_and_the_list_holds_them_all(
    client: httpx.AsyncClient, world: World
) -> None:
    anna = await world.user("anna")
    others = [await world.user(f"other{i}") for i in range(CAP + 1)]
    for other in others[:CAP]:
        assert (await client.post(f"{USER}/{other.id}/hide/", headers=anna.auth)).status_code == 204

    refused = await client.post(f"{USER}/{others[CAP].id}/hide/", headers=anna.auth)
    assert refused.status_code == 400
    assert error_field(refused) == "user" and error_code(refused) == "max_hidden"
    ids = await get_ok(client, anna, f"{USER}/hidden_users_id/")
    assert ids == sorted(o.id for o in others[:CAP])

    # showing one again (the same toggle) is always allowed, and makes room
    assert (await client.post(f"{USER}/{others[0].id}/hide/", headers=anna.auth)).status_code == 204
    again = await client.post(f"{USER}/{others[CAP].id}/hide/", headers=anna.auth)
    assert again.status_code == 204
    ids = await get_ok(client, anna, f"{USER}/hidden_users_id/")
    assert ids == sorted(o.id for o in others[1:])


async def test_hidden_ids_never_list_more_than_the_cap(
    client: httpx.AsyncClient, world: World
) -> None:
    """Rows from before the cap (or a lost race) are not all read: the lowest ids are."""
    anna = await world.user("anna")
    others = [await world.user(f"other{i}") for i in range(CAP + 2)]
    for other in others:
        await world.sql(
            "INSERT INTO hides (user_id, hidden_id, created_at) VALUES (:u, :h, :t)",
            u=anna.id,
            h=other.id,
            t=clock.now(),
        )

    ids = await get_ok(client, anna, f"{USER}/hidden_users_id/")

    assert ids == sorted(o.id for o in others)[:CAP]
    page = await get_ok(client, anna, f"{USER}/hidden_users/")
    assert page["count"] == CAP + 2  # the paginated list still shows everyone


async def test_the_search_count_is_capped_and_pages_stay_within_it(
    client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repository, "SEARCH_MAX_COUNT", 4)
    mod = await world.user("mod", role="moderator")
    for i in range(6):
        await world.user(f"fan{i}")

    first = await get_ok(client, mod, SEARCH, user="fan", limit=3)
    second = (await client.get(first["next"], headers=mod.auth)).json()
    beyond = await get_ok(client, mod, SEARCH, user="fan", offset=4)
    short = await get_ok(client, mod, SEARCH, user="f", limit=3)

    assert first["count"] == 4
    assert [u["username"] for u in first["results"]] == ["fan0", "fan1", "fan2"]
    assert [u["username"] for u in second["results"]] == ["fan3"]
    assert second["next"] is None
    assert beyond["count"] == 4 and beyond["results"] == []
    assert short["count"] == 4
    assert [u["username"] for u in short["results"]] == ["fan0", "fan1", "fan2"]


async def test_the_search_index_follows_renames_and_deletions(
    client: httpx.AsyncClient, world: World
) -> None:
    """On SQLite the trigram index is a table kept in step by triggers; this is their test."""
    mod = await world.user("mod", role="moderator")
    anna = await world.user("anna", real_name="Anna Rossi")
    await world.user("bruno", real_name="Bruno Verdi")

    await world.sql("UPDATE users SET real_name = 'Anna Bianchi' WHERE id = :id", id=anna.id)
    await world.sql("DELETE FROM users WHERE username = 'bruno'")

    assert names(await get_ok(client, mod, SEARCH, user="bianchi")) == ["anna"]
    assert names(await get_ok(client, mod, SEARCH, user="rossi")) == []
    assert names(await get_ok(client, mod, SEARCH, user="verdi")) == []
    assert names(await get_ok(client, mod, SEARCH, user="ANNA")) == ["anna"]
    newcomer = await world.user("carla", real_name="Carla Neri")
    assert names(await get_ok(client, mod, SEARCH, user="neri")) == [newcomer.username]
