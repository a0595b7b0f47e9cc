"""CORS for the configured origins (DOVECOTE_CORS_ORIGINS): embedding sites call the API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from dovecote.core.cors import socket_origin_allowed
from dovecote.core.settings import Settings
from tests.conftest import World

SITE = "https://community.example"
OTHER = "https://evil.example"


def preflight(
    origin: str, method: str = "POST", headers: str = "authorization,content-type"
) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


class TestConfigured:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"cors_origins": f"{SITE}, http://localhost:5173/"}

    async def test_preflight_from_an_allowed_origin(self, client: httpx.AsyncClient) -> None:
        asked = "authorization,content-type,x-dovecote-connection,x-dovecote-send-response"
        response = await client.options("/api/v2/pm/", headers=preflight(SITE, headers=asked))
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == SITE
        allowed = response.headers["access-control-allow-headers"].lower()
        for header in asked.split(","):
            assert header in allowed
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in response.headers
        # The uploader's chunks and the settings PATCH preflight too.
        upload = preflight("http://localhost:5173", headers="authorization,content-range")
        assert (await client.options("/api/v2/pm/upload/", headers=upload)).status_code == 200
        patch = preflight(SITE, method="PATCH")
        assert (await client.options("/api/v2/user/1/settings/", headers=patch)).status_code == 200

    async def test_answers_carry_the_origin(self, client: httpx.AsyncClient, world: World) -> None:
        anna = await world.user("anna")
        response = await client.get("/api/v2/user/me/", headers={**anna.auth, "Origin": SITE})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == SITE
        # Errors too, or the page could not read why (here a 401 and its WWW-Authenticate).
        refused = await client.get("/api/v2/user/me/", headers={"Origin": SITE})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == SITE
        assert "www-authenticate" in refused.headers["access-control-expose-headers"].lower()

    async def test_other_origins_are_refused(self, client: httpx.AsyncClient, world: World) -> None:
        response = await client.options("/api/v2/pm/", headers=preflight(OTHER))
        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers
        anna = await world.user("anna")
        plain = await client.get("/api/v2/user/me/", headers={**anna.auth, "Origin": OTHER})
        assert "access-control-allow-origin" not in plain.headers  # the browser hides it
        odd = preflight(SITE, headers="authorization,x-not-allowed")
        assert (await client.options("/api/v2/pm/", headers=odd)).status_code == 400


async def test_no_origin_is_allowed_by_default(client: httpx.AsyncClient, world: World) -> None:
    response = await client.options("/api/v2/pm/", headers=preflight(SITE))
    assert response.status_code == 405
    assert "access-control-allow-origin" not in response.headers
    anna = await world.user("anna")
    plain = await client.get("/api/v2/user/me/", headers={**anna.auth, "Origin": SITE})
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers


@pytest.mark.parametrize(
    "value", ["*", "community.example", "https://community.example/path", "ftp://x.example"]
)
def test_bad_origins_stop_the_server(value: str) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, cors_origins=value)  # type: ignore[call-arg]


def test_the_socket_origin_rule(settings: Settings) -> None:
    configured = settings.model_copy(update={"cors_origins": SITE})
    allowed = socket_origin_allowed
    assert allowed(configured, None, "dovecote.example")  # not a browser: the token decides
    assert allowed(configured, SITE, "dovecote.example")
    assert allowed(configured, SITE.upper() + "/", "dovecote.example")
    assert not allowed(configured, OTHER, "dovecote.example")
    assert not allowed(configured, "null", "dovecote.example")
    # The page Dovecote serves itself: same host and port as the request.
    assert allowed(settings, "http://127.0.0.1:8000", "127.0.0.1:8000")
    assert not allowed(settings, "http://127.0.0.1:8001", "127.0.0.1:8000")
    assert allowed(settings, "https://chat.example", "chat.example")  # behind a TLS proxy
    assert allowed(settings, "https://chat.example", "chat.example:443")
    assert not allowed(settings, "http://chat.example:8080", "chat.example")
    assert allowed(settings, "http://[::1]:8000", "[::1]:8000")
    public = settings.model_copy(update={"public_url": "https://chat.example"})
    assert allowed(public, "https://chat.example", "127.0.0.1:8000")  # proxy rewrote Host
