"""Uploading exactly as the real SelfCommunity UI does (@rpldy/chunked-uploady + react-ui):
204,800-byte chunks in series, each a multipart body with `partindex`, `totalparts` (and `uuid`
after the first) followed by the `file` part named "blob", with a Content-Range header; a file
that fits one chunk is sent with only `file`; then `?done` (multipart: uuid, filename,
totalparts), then a thumbnail (multipart: file, parentuuid)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import Member

UPLOAD = "/api/v2/pm/upload/"
CHUNK = 204_800


def png(size: int = 2_000) -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(size - 16)


def jpeg(size: int = 3_000) -> bytes:
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(size - 11)


def pdf(size: int) -> bytes:
    return b"%PDF-1.7\n" + os.urandom(size - 9)


def mp4(size: int) -> bytes:
    return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + os.urandom(size - 24)


def _content_range(start: int, chunk: bytes, total: int) -> dict[str, str]:
    return {"Content-Range": f"bytes {start}-{start + len(chunk) - 1}/{total}"}


def form(*fields: tuple[str, Any]) -> list[tuple[str, Any]]:
    """Multipart fields in this order (httpx sends `(None, value)` as a plain field)."""
    return [(k, v if isinstance(v, tuple) else (None, str(v))) for k, v in fields]


async def send_chunks(
    client: httpx.AsyncClient, member: Member, data: bytes, *, stop: int | None = None
) -> tuple[str, int]:
    """The chunk requests; returns (uuid, totalparts). One-chunk files go as a whole file."""
    parts = max(1, -(-len(data) // CHUNK))
    uuid: str | None = None
    for index in range(parts if stop is None else stop):
        chunk = data[index * CHUNK : (index + 1) * CHUNK]
        fields: list[tuple[str, Any]] = []
        if parts > 1:
            fields = [("partindex", index), ("totalparts", parts)]
            if uuid:
                fields.append(("uuid", uuid))
        fields.append(("file", ("blob", chunk, "application/octet-stream")))
        response = await client.post(
            UPLOAD,
            files=form(*fields),
            headers={**member.auth, **_content_range(index * CHUNK, chunk, len(data))},
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        uuid = response.json()["file_uuid"]
    assert uuid is not None
    return uuid, parts


async def finish(
    client: httpx.AsyncClient, member: Member, uuid: str, filename: str, parts: int
) -> httpx.Response:
    return await client.post(
        UPLOAD + "?done",
        files=form(("uuid", uuid), ("filename", filename), ("totalparts", parts)),
        headers=member.auth,
    )


async def thumbnail(
    client: httpx.AsyncClient, member: Member, parent: str, image: bytes, name: str = "t.jpg"
) -> httpx.Response:
    return await client.post(
        UPLOAD,
        files=form(("file", (name, image, "image/jpeg")), ("parentuuid", parent)),
        headers=member.auth,
    )


@dataclass
class Uploaded:
    uuid: str  # the file's
    thumbnail_uuid: str
    file_url: str
    thumbnail_url: str


async def ui_upload(
    client: httpx.AsyncClient, member: Member, data: bytes, filename: str
) -> Uploaded:
    uuid, parts = await send_chunks(client, member, data)
    done = await finish(client, member, uuid, filename, parts)
    assert done.status_code == 200, done.text
    assert done.json()["file_uuid"] == uuid
    thumb = await thumbnail(client, member, uuid, jpeg())
    assert thumb.status_code == 200, thumb.text
    body = thumb.json()
    assert body["parent_file_uuid"] == uuid
    return Uploaded(uuid, body["file_uuid"], done.json()["file_url"], body["file_url"])


async def ui_send(
    client: httpx.AsyncClient, sender: Member, recipient: Member, file_uuid: str
) -> httpx.Response:
    return await client.post(
        "/api/v2/pm/",
        json={"recipients": [recipient.id], "message": "", "file_uuid": file_uuid},
        headers=sender.auth,
    )


async def fetch(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    """Load a link the way <img>/<video> do: no Authorization header."""
    return await client.get(url, **kwargs)
