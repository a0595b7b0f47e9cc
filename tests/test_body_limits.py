"""One body-size limit, from the settings, for every kind of route: JSON, form-encoded, OAuth's
form, the upload's finish step and multipart uploads (which alone get the file-size cap)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import Member, World

MAX_BODY = 4096
MAX_FILE = 64 * 1024
PM = "/api/v2/pm/"
UPLOAD = "/api/v2/pm/upload/"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"max_body_bytes": MAX_BODY, "upload_max_file_size": MAX_FILE}


@pytest.fixture
async def anna(world: World) -> Member:
    return await world.user("anna")


def too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["errors"][0]["code"] == "body_too_large"
    assert body["detail"] == f"The request body may be at most {MAX_BODY} bytes."


async def streamed(data: bytes) -> AsyncIterator[bytes]:
    """A body without Content-Length: only counting while it is read can refuse it."""
    for start in range(0, len(data), 1024):
        yield data[start : start + 1024]


async def test_json_bodies(client: httpx.AsyncClient, anna: Member) -> None:
    big = json.dumps({"recipients": [2], "message": "x" * MAX_BODY}).encode()
    headers = {**anna.auth, "Content-Type": "application/json"}
    too_large(await client.post(PM, content=big, headers=headers))
    too_large(await client.post(PM, content=streamed(big), headers=headers))
    statuses = "/api/v2/user/connection/statuses/"
    too_large(await client.post(statuses, content=big, headers=headers))


async def test_form_encoded_bodies(client: httpx.AsyncClient, anna: Member) -> None:
    form = {"recipients": "2", "message": "x" * MAX_BODY}
    too_large(await client.post(PM, data=form, headers=anna.auth))


async def test_multipart_bodies_outside_the_upload_endpoint(
    client: httpx.AsyncClient, anna: Member
) -> None:
    files = {"message": (None, "x" * MAX_BODY)}
    too_large(await client.post(PM, files=files, headers=anna.auth))


async def test_oauth_forms_answer_in_rfc_6749s_shape(client: httpx.AsyncClient) -> None:
    form = {"grant_type": "password", "client_id": "c", "username": "u", "password": "x" * MAX_BODY}
    answer = await client.post("/oauth/token/", data=form)
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"] == "invalid_request"


async def test_the_upload_finish_step_has_the_json_cap(
    client: httpx.AsyncClient, anna: Member
) -> None:
    body = {"uuid": "0" * 36, "filename": "x" * MAX_BODY}
    too_large(await client.post(f"{UPLOAD}?done", json=body, headers=anna.auth))


async def test_uploads_get_the_file_size_cap_and_only_that(
    client: httpx.AsyncClient, anna: Member
) -> None:
    fits = b"a" * (MAX_FILE - 10)  # far more than MAX_BODY
    accepted = await client.post(UPLOAD, files={"file": ("a.bin", fits)}, headers=anna.auth)
    assert accepted.status_code == 200, accepted.text

    beyond = b"a" * (MAX_FILE + 128 * 1024)  # past the file cap and the multipart framing
    refused = await client.post(UPLOAD, files={"file": ("b.bin", beyond)}, headers=anna.auth)
    assert refused.status_code == 413, refused.text
    assert refused.json()["errors"][0]["code"] == "body_too_large"


async def test_the_setting_is_the_limit_also_above_one_mebibyte(
    client: httpx.AsyncClient, anna: Member, world: World, settings: Any
) -> None:
    """No hard-coded cap below the setting: a 1.5 MiB JSON body passes the size check when
    DOVECOTE_MAX_BODY_BYTES allows 2 MiB (and is then judged on its content: too long)."""
    from asgi_lifespan import LifespanManager

    from dovecote.app import create_app

    roomy = create_app(settings.model_copy(update={"max_body_bytes": 2 * 1024 * 1024}))
    body = {"recipients": [anna.id], "message": "x" * (1536 * 1024)}
    async with LifespanManager(roomy):
        transport = httpx.ASGITransport(app=roomy)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            answer = await http.post(PM, json=body, headers=anna.auth)
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"][0]["field"] == "message"
