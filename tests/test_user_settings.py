"""`/api/v2/user/{id}/settings/`: a member's settings, theirs (and staff's) alone."""

from __future__ import annotations

import httpx

from tests.conftest import Member, World

DEFAULTS = {
    "qa_frequency": 1,
    "email_notification_not_qa": 1,
    "mobile_notifications_scmty": 1,
    "show_toast_notifications": 1,
    "toast_notifications_emit_sound": 1,
}


def path(who: Member | int) -> str:
    return f"/api/v2/user/{who.id if isinstance(who, Member) else who}/settings/"


async def test_a_member_reads_the_defaults_then_changes_one(
    client: httpx.AsyncClient, world: World
) -> None:
    anna = await world.user("anna")
    first = await client.get(path(anna), headers=anna.auth)
    assert first.status_code == 200, first.text
    assert first.json() == DEFAULTS

    # react-core's settings manager PATCHes one key at a time, as JSON.
    changed = await client.patch(
        path(anna), headers=anna.auth, json={"show_toast_notifications": 0}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {**DEFAULTS, "show_toast_notifications": 0}
    again = await client.patch(path(anna), headers=anna.auth, json={"qa_frequency": -1})
    assert again.json() == {**DEFAULTS, "show_toast_notifications": 0, "qa_frequency": -1}

    kept = await client.get(path(anna).rstrip("/"), headers=anna.auth)  # both spellings
    assert kept.json() == again.json()
    rows = await world.sql("SELECT count(*) FROM user_settings WHERE user_id = :u", u=anna.id)
    assert rows[0][0] == 1


async def test_form_bodies_work_too(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    response = await client.patch(
        path(anna), headers=anna.auth, data={"email_notification_not_qa": "0"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["email_notification_not_qa"] == 0


async def test_nobody_else_reads_or_changes_them(client: httpx.AsyncClient, world: World) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.mutual(anna, bruno)
    await client.patch(path(anna), headers=anna.auth, json={"qa_frequency": 0})
    for response in (
        await client.get(path(anna), headers=bruno.auth),
        await client.patch(path(anna), headers=bruno.auth, json={"qa_frequency": 1}),
        await client.get(path(999_999), headers=bruno.auth),  # the same answer as a stranger's
    ):
        assert response.status_code == 404, response.text
        assert response.json()["errors"][0]["code"] == "user_settings_not_found"
    mine = await client.get(path(anna), headers=anna.auth)
    assert mine.json()["qa_frequency"] == 0  # bruno changed nothing
    for response in (
        await client.get(path(anna)),
        await client.patch(path(anna), json={"qa_frequency": 1}),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_staff_read_and_change_anyones(client: httpx.AsyncClient, world: World) -> None:
    anna, mod = await world.user("anna"), await world.user("mod", role="moderator")
    response = await client.patch(path(anna), headers=mod.auth, json={"qa_frequency": 0})
    assert response.status_code == 200, response.text
    seen = await client.get(path(anna), headers=anna.auth)
    assert seen.json()["qa_frequency"] == 0
    missing = await client.get(path(999_999), headers=mod.auth)
    assert missing.status_code == 404


async def test_bad_values_are_400_and_change_nothing(
    client: httpx.AsyncClient, world: World
) -> None:
    anna = await world.user("anna")
    for body in (
        {"qa_frequency": 2},
        {"show_toast_notifications": -1},
        {"show_toast_notifications": "yes"},
        {"colour": 1},
        {"qa_frequency": 0, "mobile_notifications_scmty": 7},
    ):
        response = await client.patch(path(anna), headers=anna.auth, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["errors"][0]["field"]
    assert (await client.get(path(anna), headers=anna.auth)).json() == DEFAULTS
    malformed = await client.patch(
        path(anna),
        headers={**anna.auth, "Content-Type": "application/json"},
        content=b"[1",
    )
    assert malformed.status_code == 400
    empty = await client.patch(path(anna), headers=anna.auth, json={})
    assert empty.status_code == 200 and empty.json() == DEFAULTS


async def test_settings_go_with_the_user(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    await client.patch(path(anna), headers=anna.auth, json={"qa_frequency": 0})
    await world.sql("DELETE FROM users WHERE id = :u", u=anna.id)
    rows = await world.sql("SELECT count(*) FROM user_settings WHERE user_id = :u", u=anna.id)
    assert rows[0][0] == 0
