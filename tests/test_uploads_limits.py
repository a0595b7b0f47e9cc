"""Upload limits (413) and the expiry of uploads nobody sent."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from dovecote.core import clock
from dovecote.core.settings import Settings
from dovecote.uploads import access
from tests.conftest import World
from tests.uploading import CHUNK, UPLOAD, fetch, form, pdf, send_chunks, ui_send, ui_upload

MAX = 300_000


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "upload_max_file_size": MAX,
        "upload_max_parts": 3,
        "upload_max_pending": 3,
        "upload_pending_seconds": 600,
    }


def _code(response: httpx.Response) -> str:
    assert response.status_code == 413, response.text
    return str(response.json()["errors"][0]["code"])


async def test_files_over_the_size_limit_are_refused(
    client: httpx.AsyncClient, world: World
) -> None:
    sender = await world.user()

    def whole(size: int) -> Any:
        return client.post(
            UPLOAD,
            files=form(("file", ("a.pdf", pdf(size), "application/pdf"))),
            headers=sender.auth,
        )

    assert _code(await whole(MAX + 1)) == "file_too_large"
    assert _code(await whole(2 * MAX)) == "body_too_large"
    assert (await whole(MAX)).status_code == 200


async def test_chunked_uploads_over_the_limits_are_refused(
    client: httpx.AsyncClient, world: World
) -> None:
    sender = await world.user()
    piece = pdf(CHUNK)

    def chunk(index: int, parts: int, uuid: str | None = None, **headers: str) -> Any:
        fields: list[tuple[str, object]] = [("partindex", index), ("totalparts", parts)]
        if uuid:
            fields.append(("uuid", uuid))
        fields.append(("file", ("blob", piece, "application/octet-stream")))
        return client.post(UPLOAD, files=form(*fields), headers={**sender.auth, **headers})

    too_many_parts = await chunk(0, 4)
    declared_total = await chunk(0, 2, **{"Content-Range": f"bytes 0-{CHUNK - 1}/{MAX + 1}"})
    first = await chunk(0, 2)
    beyond = await chunk(1, 2, first.json()["file_uuid"])

    assert _code(too_many_parts) == "too_many_parts"
    assert _code(declared_total) == "file_too_large"
    assert first.status_code == 200
    assert _code(beyond) == "file_too_large"


async def test_pending_uploads_are_limited_until_sent_or_expired(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient = await world.user("a"), await world.user("b")
    await world.follow(recipient, sender)
    first, _ = await send_chunks(client, sender, pdf(1_000))
    await send_chunks(client, sender, pdf(1_000))
    await send_chunks(client, sender, pdf(1_000))

    refused = await client.post(
        UPLOAD, files=form(("file", ("a", pdf(1_000), "a/b"))), headers=sender.auth
    )
    await ui_send(client, sender, recipient, first)
    after_send = await client.post(
        UPLOAD, files=form(("file", ("a", pdf(1_000), "a/b"))), headers=sender.auth
    )

    assert _code(refused) == "too_many_pending_uploads"
    assert after_send.status_code == 200


async def test_unsent_uploads_expire_and_are_cleaned_up(
    app: FastAPI, client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    sender, recipient = await world.user("a"), await world.user("b")
    await world.follow(recipient, sender)
    sent = await ui_upload(client, sender, pdf(1_000), "kept.pdf")
    message = await ui_send(client, sender, recipient, sent.uuid)
    unsent = await ui_upload(client, sender, pdf(1_000), "dropped.pdf")
    half, _ = await send_chunks(client, sender, pdf(CHUNK + 1_000), stop=1)
    media = settings.effective_media_dir
    assert len([p for p in media.rglob("*") if p.is_file()]) == 5  # 2 files, 2 thumbnails, 1 part

    clock.advance(timedelta(minutes=11))
    removed = await access.cleanup(app.state.dovecote.database, settings, app.state.uploads_storage)

    assert removed == 3  # the unsent file, its thumbnail and the half-finished upload
    assert len([p for p in media.rglob("*") if p.is_file()]) == 2
    link = await client.get(f"/api/v2/pm/{message.json()['id']}/", headers=recipient.auth)
    assert link.status_code == 200
    assert (await fetch(client, link.json()["file"]["url"])).status_code == 200
    again = await ui_send(client, sender, recipient, unsent.uuid)
    assert again.status_code == 400
    assert await world.sql("SELECT id FROM files WHERE uuid = :u", u=half) == []


async def test_files_of_deleted_messages_are_cleaned_up_by_the_cli(
    client: httpx.AsyncClient,
    world: World,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dovecote import cli
    from dovecote.core import settings as settings_module

    sender, recipient = await world.user("a"), await world.user("b")
    await world.follow(recipient, sender)
    uploaded = await ui_upload(client, sender, pdf(1_000), "gone.pdf")
    message = await ui_send(client, sender, recipient, uploaded.uuid)
    deleted = await client.delete(f"/api/v2/pm/{message.json()['id']}/", headers=sender.auth)
    assert deleted.status_code == 204
    monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
    monkeypatch.setattr(cli, "get_settings", lambda: settings)

    result = await asyncio.to_thread(CliRunner().invoke, cli.app, ["uploads", "cleanup"])

    assert result.exit_code == 0, result.output
    assert "removed 2 files" in result.output
    assert await world.sql("SELECT id FROM files") == []
    assert [p for p in settings.effective_media_dir.rglob("*") if p.is_file()] == []
