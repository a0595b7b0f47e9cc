"""Preferences, features and the web page's configuration: what react-core reads at start."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dovecote.community import catalog
from dovecote.community.service import check_overrides
from dovecote.core.settings import Settings
from tests.conftest import World

PREFS = "/api/v2/dynamic_preference/"
URL_TEMPLATES = (
    "post",
    "discussion",
    "status",
    "comment",
    "category",
    "categories_list",
    "profile",
    "profile_settings",
    "notifications",
    "private_message",
    "incubator",
    "live_stream",
)


def as_react_core(page: dict[str, Any]) -> dict[str, Any]:
    """What SCPreferencesProvider makes of the answer: `section.name` -> the preference."""
    return {f"{p['section']}.{p['name']}": p for p in page["results"]}


async def test_preferences_are_public_and_hold_what_react_core_reads(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(PREFS)  # react-core asks before anyone has signed in
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["count"] == len(page["results"]) == len(catalog.PREFERENCES)
    assert page["next"] is None and page["previous"] is None  # all of it in the first page
    prefs = as_react_core(page)
    assert prefs["addons.private_messages_enabled"]["value"] is True
    for name in URL_TEMPLATES:  # react-core's router reads each `.value`
        value = prefs[f"configurations.url_template_{name}"]["value"]
        assert isinstance(value, str) and value.startswith("/"), name
    assert prefs["configurations.url_template_private_message"]["value"] == "/messages/{id}/"
    assert prefs["configurations.follow_enabled"]["value"] is True
    assert prefs["configurations.groups_enabled"]["value"] is False
    assert prefs["text.application_name"]["value"] == "Dovecote"
    assert prefs["colors.colorprimary"]["value"].startswith("#")
    assert "image/png" in prefs["configurations.accepted_media_mimetypes"]["value"]
    first = page["results"][0]
    assert set(first) == {"id", "section", "name", "value", "type", "help"}
    assert [p["id"] for p in page["results"]] == list(range(1, len(page["results"]) + 1))


async def test_a_bad_token_does_not_hide_the_preferences(client: httpx.AsyncClient) -> None:
    # An expired session must not leave the page blank: these answers are public.
    headers = {"Authorization": "Bearer expired-or-garbage"}
    assert (await client.get(PREFS, headers=headers)).status_code == 200
    assert (await client.get("/api/v2/feature/", headers=headers)).status_code == 200


class TestOverrides:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {
            "preferences": {
                "text.application_name": "Circolo Scacchi",
                "configurations.url_template_profile": "https://scacchi.example/u/{id}/",
                "addons.private_messages_enabled": True,
            }
        }

    async def test_operators_override_values_from_settings(self, client: httpx.AsyncClient) -> None:
        prefs = as_react_core((await client.get(PREFS)).json())
        assert prefs["text.application_name"]["value"] == "Circolo Scacchi"
        profile = prefs["configurations.url_template_profile"]["value"]
        assert profile == "https://scacchi.example/u/{id}/"
        assert prefs["text.application_slogan1"]["value"] == ""  # the others keep defaults


def test_unknown_or_mistyped_overrides_stop_the_server(settings: Settings) -> None:
    bad = settings.model_copy(
        update={"preferences": {"text.aplication_name": "x", "addons.private_messages_enabled": 1}}
    )
    with pytest.raises(ValueError) as caught:
        check_overrides(bad)
    assert "text.aplication_name" in str(caught.value)
    assert "addons.private_messages_enabled" in str(caught.value) and "bool" in str(caught.value)


async def test_preferences_filter_search_keys_order_and_page(client: httpx.AsyncClient) -> None:
    colors = (await client.get(PREFS, params={"section": "colors"})).json()
    assert colors["count"] == 6 and {p["section"] for p in colors["results"]} == {"colors"}

    keys = "addons.private_messages_enabled,text.application_name,nope.nope"
    found = (await client.get(PREFS + "search/", params={"keys": keys})).json()
    assert {f"{p['section']}.{p['name']}" for p in found["results"]} == set(keys.split(",")[:2])

    searched = (await client.get(PREFS + "search/", params={"search": "url_template"})).json()
    assert searched["count"] == len(URL_TEMPLATES)

    ordered = (await client.get(PREFS, params={"ordering": "-name", "section": "text"})).json()
    names = [p["name"] for p in ordered["results"]]
    assert names == sorted(names, reverse=True)

    page = (await client.get(PREFS, params={"limit": 5, "offset": 5})).json()
    assert [p["id"] for p in page["results"]] == [6, 7, 8, 9, 10]
    assert page["next"].startswith("http://testserver/api/v2/dynamic_preference/?")
    assert "offset=10" in page["next"] and page["previous"]

    absent = (await client.get(PREFS, params={"limit": "undefined", "search": "undefined"})).json()
    assert absent["count"] == len(catalog.PREFERENCES)


async def test_one_preference_by_id(client: httpx.AsyncClient) -> None:
    first = (await client.get(PREFS + "1/")).json()
    assert first["section"] == "addons" and first["name"] == "private_messages_enabled"
    missing = await client.get(PREFS + "999999/")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "preference_not_found"


async def test_bad_preference_queries_are_400(client: httpx.AsyncClient) -> None:
    for params in ({"ordering": "value"}, {"limit": "-1"}, {"offset": "x"}, {"search": "a\x00"}):
        response = await client.get(PREFS, params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["errors"][0]["field"]


async def test_features_list_what_this_server_serves(
    client: httpx.AsyncClient, world: World
) -> None:
    anna = await world.user("anna")
    for headers in ({}, anna.auth):
        page = (await client.get("/api/v2/feature/", headers=headers)).json()
        assert page["count"] == len(catalog.FEATURE_NAMES) == len(page["results"])
        enabled = {f["name"] for f in page["results"] if f["enabled"]}
        assert enabled == {"api_v2"}
        # Groups are not served yet: react-core must not start its group managers.
        assert not enabled & {"grouping", "tagging"}
    named = (await client.get("/api/v2/feature/", params={"name": "grouping"})).json()
    assert [(f["name"], f["enabled"]) for f in named["results"]] == [("grouping", False)]
    searched = (await client.get("/api/v2/feature/", params={"search": "moderation"})).json()
    assert searched["count"] == 4


async def test_web_config_names_the_first_party_client(client: httpx.AsyncClient) -> None:
    response = await client.get("/web-config.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "oauth_client_id": "dovecote-web",
        "connection_header": "X-Dovecote-Connection",
        "send_response_header": "X-Dovecote-Send-Response",
    }
