"""Attachments as the real UI uploads and sends them, read back through the links."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import httpx
import pytest

from dovecote.core import clock
from tests.conftest import World
from tests.s3_server import new_bucket
from tests.uploading import (
    CHUNK,
    UPLOAD,
    fetch,
    finish,
    form,
    mp4,
    pdf,
    png,
    send_chunks,
    thumbnail,
    ui_send,
    ui_upload,
)


@pytest.fixture(params=["local", "s3"])
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, object]:
    """Every test here runs on the local directory and on a real S3-compatible server."""
    storage = new_bucket(request.getfixturevalue("s3_endpoint")) if request.param == "s3" else {}
    return {"upload_link_seconds": 600, **storage}


async def _pair(world: World) -> tuple:  # type: ignore[type-arg]
    sender, recipient = await world.user("anna"), await world.user("bruno")
    await world.follow(recipient, sender)
    return sender, recipient


async def test_chunked_pdf_sent_with_its_thumbnail_uuid(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient = await _pair(world)
    data = pdf(3 * CHUNK + 12_345)  # four chunks, the last one short

    uploaded = await ui_upload(client, sender, data, "Annual report.pdf")
    response = await ui_send(client, sender, recipient, uploaded.thumbnail_uuid)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["message"] == ""
    file = body["file"]
    assert file["uuid"] == uploaded.uuid
    assert file["filename"] == "Annual report.pdf"
    assert file["filesize"] == len(data)
    assert file["mimetype"] == "application/pdf"
    assert file["duration"] is None
    got = await fetch(client, file["url"])
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-length"] == str(len(data))
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got.headers["content-security-policy"]
    thumb = await fetch(client, file["thumbnail"])
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/jpeg"
    assert thumb.headers["content-disposition"].startswith("inline;")


async def test_recipient_sees_the_file_in_thread_and_inbox(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient = await _pair(world)
    data = pdf(CHUNK + 1)
    uploaded = await ui_upload(client, sender, data, "notes.pdf")
    sent = await ui_send(client, sender, recipient, uploaded.thumbnail_uuid)
    assert sent.status_code == 201, sent.text

    thread = await client.get(f"/api/v2/pm/?user={sender.id}", headers=recipient.auth)
    inbox = await client.get("/api/v2/pm/", headers=recipient.auth)
    one = await client.get(f"/api/v2/pm/{sent.json()['id']}/", headers=recipient.auth)

    [message] = thread.json()["results"]
    assert message["file"]["uuid"] == uploaded.uuid
    assert (await fetch(client, message["file"]["url"])).content == data
    assert (await fetch(client, one.json()["file"]["url"])).content == data
    thumb = await fetch(client, message["file"]["thumbnail"])
    assert thumb.headers["content-type"] == "image/jpeg"
    assert inbox.json()["results"][0]["headline"] == "notes.pdf"


async def test_one_chunk_image_is_finished_with_done_too(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient = await _pair(world)
    data = png(50_000)

    uuid, parts = await send_chunks(client, sender, data)
    done = await finish(client, sender, uuid, "holiday.png", parts)

    assert parts == 1
    assert done.status_code == 200, done.text
    assert done.json()["file_uuid"] == uuid
    assert (await fetch(client, done.json()["file_url"])).content == data
    sent = await ui_send(client, sender, recipient, uuid)
    file = sent.json()["file"]
    assert file["filename"] == "holiday.png"
    assert file["mimetype"] == "image/png"
    got = await fetch(client, file["url"])
    assert got.content == data
    assert got.headers["content-disposition"].startswith("inline;")
    assert file["thumbnail"] is not None  # an image stands for itself without a thumbnail


async def test_file_with_text_and_the_upload_answers(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient = await _pair(world)
    data = mp4(300_000)
    response = await client.post(
        UPLOAD,
        files=form(
            ("file", ("clip.mp4", data, "video/mp4")),
            ("duration", "12.5"),
            ("md5", hashlib.md5(data).hexdigest()),
        ),
        headers=sender.auth,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"file_url", "file_uuid"}

    sent = await client.post(
        "/api/v2/pm/",
        data={
            "recipients": str(recipient.id),
            "message": "look",
            "file_uuid": response.json()["file_uuid"],
        },
        headers=sender.auth,
    )

    assert sent.status_code == 201, sent.text
    assert sent.json()["message"] == "look"
    file = sent.json()["file"]
    assert (file["mimetype"], file["duration"], file["filename"]) == ("video/mp4", 12.5, "clip.mp4")
    assert file["thumbnail"] is None


async def test_video_ranges(client: httpx.AsyncClient, world: World) -> None:
    sender, _ = await _pair(world)
    data = mp4(100_000)
    answer = await client.post(
        UPLOAD, files=form(("file", ("v.mp4", data, "video/mp4"))), headers=sender.auth
    )
    url = answer.json()["file_url"]

    part = await fetch(client, url, headers={"Range": "bytes=100-199"})
    tail = await fetch(client, url, headers={"Range": "bytes=-10"})
    open_ended = await fetch(client, url, headers={"Range": "bytes=99990-"})
    outside = await fetch(client, url, headers={"Range": "bytes=100000-"})
    head = await client.head(url)

    assert part.status_code == 206
    assert part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert part.headers["content-length"] == "100"
    assert part.headers["content-type"] == "video/mp4"
    assert tail.content == data[-10:]
    assert open_ended.content == data[99990:]
    assert outside.status_code == 416
    assert outside.headers["content-range"] == f"bytes */{len(data)}"
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["accept-ranges"] == "bytes"
    assert head.content == b""


@pytest.mark.parametrize("kind", ["json", "form"])
async def test_done_accepts_json_and_form_bodies(
    client: httpx.AsyncClient, world: World, kind: str
) -> None:
    sender, _ = await _pair(world)
    data = pdf(2 * CHUNK)
    uuid, parts = await send_chunks(client, sender, data)
    fields = {"uuid": uuid, "filename": "a.pdf", "totalparts": parts}

    if kind == "json":
        response = await client.post(UPLOAD + "?done", json=fields, headers=sender.auth)
    else:
        response = await client.post(
            UPLOAD + "?done", data={k: str(v) for k, v in fields.items()}, headers=sender.auth
        )

    assert response.status_code == 200, response.text
    assert (await fetch(client, response.json()["file_url"])).content == data


async def test_participants_fetch_with_their_token(client: httpx.AsyncClient, world: World) -> None:
    sender, recipient = await _pair(world)
    data = pdf(10_000)
    uploaded = await ui_upload(client, sender, data, "x.pdf")
    await ui_send(client, sender, recipient, uploaded.uuid)
    path = f"/api/v2/pm/files/{uploaded.uuid}/"

    for member in (sender, recipient):
        got = await client.get(path, headers=member.auth)
        assert got.status_code == 200
        assert got.content == data
    thumb = await client.get(f"/api/v2/pm/files/{uploaded.thumbnail_uuid}/", headers=recipient.auth)
    assert thumb.status_code == 200


async def test_links_are_fresh_and_expire(client: httpx.AsyncClient, world: World) -> None:
    sender, recipient = await _pair(world)
    uploaded = await ui_upload(client, sender, pdf(5_000), "x.pdf")
    sent = await ui_send(client, sender, recipient, uploaded.uuid)
    old_url = sent.json()["file"]["url"]

    clock.advance(timedelta(minutes=30))  # links live 10 to 20 minutes here
    fresh = await client.get(f"/api/v2/pm/{sent.json()['id']}/", headers=recipient.auth)

    assert (await fetch(client, old_url)).status_code == 404
    assert (await fetch(client, fresh.json()["file"]["url"])).status_code == 200


async def test_a_late_delete_detaches_the_file(client: httpx.AsyncClient, world: World) -> None:
    sender, recipient = await _pair(world)
    uploaded = await ui_upload(client, sender, pdf(5_000), "x.pdf")
    sent = await ui_send(client, sender, recipient, uploaded.uuid)
    url = sent.json()["file"]["url"]

    clock.advance(timedelta(seconds=61))
    deleted = await client.delete(f"/api/v2/pm/{sent.json()['id']}/", headers=sender.auth)
    seen = await client.get(f"/api/v2/pm/{sent.json()['id']}/", headers=recipient.auth)

    assert deleted.status_code == 204
    assert seen.json()["file"] is None
    assert (await fetch(client, url)).status_code == 404
    path = f"/api/v2/pm/files/{uploaded.uuid}/"
    assert (await client.get(path, headers=recipient.auth)).status_code == 404


async def test_a_new_thumbnail_replaces_the_old_one_until_sent(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient = await _pair(world)
    uploaded = await ui_upload(client, sender, pdf(5_000), "x.pdf")
    second_image = png(4_000)

    again = await thumbnail(client, sender, uploaded.uuid, second_image, "t.png")
    stale = await ui_send(client, sender, recipient, uploaded.thumbnail_uuid)
    sent = await ui_send(client, sender, recipient, again.json()["file_uuid"])
    late = await thumbnail(client, sender, uploaded.uuid, png(), "t.png")

    assert again.status_code == 200
    assert (await fetch(client, uploaded.thumbnail_url)).status_code == 404
    assert stale.status_code == 400  # the replaced thumbnail no longer stands for anything
    assert (await fetch(client, sent.json()["file"]["thumbnail"])).content == second_image
    assert late.status_code == 400
    assert late.json()["errors"][0]["messages"][0]["code"] == "already_sent"


async def test_a_file_sent_twice_lives_while_one_message_carries_it(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient = await _pair(world)
    data = pdf(5_000)
    uploaded = await ui_upload(client, sender, data, "x.pdf")
    first = await ui_send(client, sender, recipient, uploaded.uuid)
    second = await ui_send(client, sender, recipient, uploaded.thumbnail_uuid)

    await client.delete(f"/api/v2/pm/{first.json()['id']}/", headers=sender.auth)

    assert second.json()["file"]["uuid"] == uploaded.uuid
    assert (await fetch(client, second.json()["file"]["url"])).content == data
