"""Uploads from the attacker's side: other people's uploads, forged links, broken sequences."""

from __future__ import annotations

import hashlib
import uuid as uuids
from datetime import timedelta
from pathlib import Path

import httpx

from dovecote.core import clock
from dovecote.core.settings import Settings
from tests.conftest import Member, World
from tests.uploading import (
    CHUNK,
    UPLOAD,
    fetch,
    finish,
    form,
    jpeg,
    pdf,
    send_chunks,
    thumbnail,
    ui_send,
    ui_upload,
)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _field_error(response: httpx.Response, field: str) -> str:
    assert response.status_code == 400, response.text
    [error] = [e for e in response.json()["errors"] if e.get("field") == field]
    return str(error["messages"][0]["code"])


async def _chunk(
    client: httpx.AsyncClient,
    member: Member,
    data: bytes,
    index: int,
    parts: int,
    uuid: str | None,
) -> httpx.Response:
    piece = data[index * CHUNK : (index + 1) * CHUNK]
    fields: list[tuple[str, object]] = [("partindex", index), ("totalparts", parts)]
    if uuid:
        fields.append(("uuid", uuid))
    fields.append(("file", ("blob", piece, "application/octet-stream")))
    start = index * CHUNK
    return await client.post(
        UPLOAD,
        files=form(*fields),
        headers={
            **member.auth,
            "Content-Range": f"bytes {start}-{start + len(piece) - 1}/{len(data)}",
        },
    )


async def test_another_users_upload_cannot_be_continued_finished_or_thumbnailed(
    client: httpx.AsyncClient, world: World
) -> None:
    owner, mallory = await world.user("owner"), await world.user("mallory")
    data = pdf(3 * CHUNK)
    uuid, parts = await send_chunks(client, owner, data, stop=2)
    random_uuid = str(uuids.uuid4())

    chunk = await _chunk(client, mallory, data, 2, parts, uuid)
    done = await finish(client, mallory, uuid, "x.pdf", parts)
    thumb = await thumbnail(client, mallory, uuid, jpeg())
    unknown = await finish(client, mallory, random_uuid, "x.pdf", parts)

    assert _field_error(chunk, "uuid") == "does_not_exist"
    assert _field_error(done, "uuid") == "does_not_exist"
    assert _field_error(thumb, "parentuuid") == "does_not_exist"
    assert done.json() == unknown.json()  # another's upload looks exactly like no upload
    assert (await _chunk(client, owner, data, 2, parts, uuid)).status_code == 200
    finished = await finish(client, owner, uuid, "x.pdf", parts)
    assert (await fetch(client, finished.json()["file_url"])).content == data


async def test_another_users_file_cannot_be_attached(
    client: httpx.AsyncClient, world: World
) -> None:
    owner, mallory, friend = (
        await world.user("owner"),
        await world.user("mallory"),
        await world.user(),
    )
    await world.follow(friend, mallory)
    uploaded = await ui_upload(client, owner, pdf(5_000), "secret.pdf")

    by_file = await ui_send(client, mallory, friend, uploaded.uuid)
    by_thumbnail = await ui_send(client, mallory, friend, uploaded.thumbnail_uuid)
    by_nothing = await ui_send(client, mallory, friend, str(uuids.uuid4()))

    for response in (by_file, by_thumbnail, by_nothing):
        assert _field_error(response, "file_uuid") == "does_not_exist"
    assert by_file.json() == by_nothing.json()
    assert await world.sql("SELECT id FROM messages") == []


async def test_an_unfinished_upload_cannot_be_attached(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient = await world.user("anna"), await world.user("bruno")
    await world.follow(recipient, sender)
    uuid, _ = await send_chunks(client, sender, pdf(2 * CHUNK))

    response = await ui_send(client, sender, recipient, uuid)

    assert _field_error(response, "file_uuid") == "does_not_exist"


async def test_files_are_refused_without_entitlement(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient, stranger = await world.user("a"), await world.user("b"), await world.user()
    await world.follow(recipient, sender)
    uploaded = await ui_upload(client, sender, pdf(5_000), "x.pdf")
    sent = await ui_send(client, sender, recipient, uploaded.thumbnail_uuid)
    url = sent.json()["file"]["url"]
    path = f"/api/v2/pm/files/{uploaded.uuid}/"
    signature = url.split("sig=")[1]
    tampered = url[: -len(signature)] + ("A" if signature[0] != "A" else "B") + signature[1:]
    other_file = url.replace(uploaded.uuid, uploaded.thumbnail_uuid)
    later = url.replace("exp=", "exp=9")

    assert (await client.get(path, headers=stranger.auth)).status_code == 404
    thumb_path = f"/api/v2/pm/files/{uploaded.thumbnail_uuid}/"
    assert (await client.get(thumb_path, headers=stranger.auth)).status_code == 404
    assert (await client.get(path)).status_code == 401
    for forged in (tampered, other_file, later, path + "?exp=1&sig=x"):
        response = await fetch(client, forged)
        assert response.status_code == 404, forged
        assert response.json()["errors"][0]["code"] == "file_not_found"
    missing = await client.get(f"/api/v2/pm/files/{uuids.uuid4()}/", headers=stranger.auth)
    assert missing.json() == (await client.get(path, headers=stranger.auth)).json()
    clock.advance(timedelta(hours=7))  # links live six hours
    assert (await fetch(client, url)).status_code == 404


async def test_chunks_out_of_order_repeated_or_missing_leave_the_upload_resumable(
    client: httpx.AsyncClient, world: World
) -> None:
    sender = await world.user()
    data = pdf(4 * CHUNK + 7)
    parts = 5
    first = await _chunk(client, sender, data, 0, parts, None)
    uuid = first.json()["file_uuid"]

    skipped = await _chunk(client, sender, data, 2, parts, uuid)
    repeated = await _chunk(client, sender, data, 0, parts, uuid)
    no_uuid = await _chunk(client, sender, data, 1, parts, None)
    early = await finish(client, sender, uuid, "x.pdf", parts)
    wrong_total = await _chunk(client, sender, data, 1, parts + 1, uuid)
    beyond = await _chunk(client, sender, data, 7, parts, uuid)

    assert _field_error(skipped, "partindex") == "unexpected_part"
    assert "Expected part 1" in skipped.json()["detail"]
    assert _field_error(repeated, "partindex") == "unexpected_part"
    assert _field_error(no_uuid, "uuid") == "required"
    assert _field_error(early, "uuid") == "missing_parts"
    assert _field_error(wrong_total, "totalparts") == "mismatch"
    assert _field_error(beyond, "partindex") == "invalid"
    for index in range(1, parts):
        assert (await _chunk(client, sender, data, index, parts, uuid)).status_code == 200
    done = await finish(client, sender, uuid, "x.pdf", parts)
    assert done.status_code == 200, done.text
    assert (await fetch(client, done.json()["file_url"])).content == data


async def test_content_range_and_offsets_must_match_the_upload(
    client: httpx.AsyncClient, world: World
) -> None:
    sender = await world.user()
    data = pdf(2 * CHUNK)
    first = await _chunk(client, sender, data, 0, 2, None)
    uuid = first.json()["file_uuid"]
    piece = data[CHUNK:]

    def post(headers: dict[str, str], *extra: tuple[str, object]) -> object:
        fields = [("partindex", 1), ("totalparts", 2), ("uuid", uuid), *extra]
        fields.append(("file", ("blob", piece, "application/octet-stream")))
        return client.post(UPLOAD, files=form(*fields), headers={**sender.auth, **headers})

    shifted = await post({"Content-Range": f"bytes 0-{CHUNK - 1}/{2 * CHUNK}"})  # type: ignore[misc]
    garbage = await post({"Content-Range": "bytes nonsense"})  # type: ignore[misc]
    offset = await post({}, ("partbyteoffset", 5))  # type: ignore[misc]

    assert _field_error(shifted, "Content-Range") == "mismatch"
    assert _field_error(garbage, "Content-Range") == "invalid"
    assert _field_error(offset, "partbyteoffset") == "mismatch"
    assert (await post({}, ("partbyteoffset", CHUNK))).status_code == 200  # type: ignore[misc]


async def test_md5_is_checked(client: httpx.AsyncClient, world: World) -> None:
    sender = await world.user()
    data = pdf(2 * CHUNK)
    uuid, parts = await send_chunks(client, sender, data)
    wrong = hashlib.md5(b"other").hexdigest()
    whole = await client.post(
        UPLOAD,
        files=form(("file", ("a.pdf", data, "application/pdf")), ("md5", wrong)),
        headers=sender.auth,
    )

    mismatch = await client.post(
        UPLOAD + "?done",
        files=form(("uuid", uuid), ("filename", "a.pdf"), ("totalparts", parts), ("md5", wrong)),
        headers=sender.auth,
    )
    right = await client.post(
        UPLOAD + "?done",
        json={"uuid": uuid, "filename": "a.pdf", "md5": hashlib.md5(data).hexdigest().upper()},
        headers=sender.auth,
    )

    assert _field_error(whole, "md5") == "mismatch"
    assert _field_error(mismatch, "md5") == "mismatch"
    assert right.status_code == 200, right.text
    assert (await fetch(client, right.json()["file_url"])).content == data


async def test_finishing_twice_answers_the_same(client: httpx.AsyncClient, world: World) -> None:
    sender = await world.user()
    data = pdf(2 * CHUNK + 1)
    uuid, parts = await send_chunks(client, sender, data)

    once = await finish(client, sender, uuid, "a.pdf", parts)
    twice = await finish(client, sender, uuid, "a.pdf", parts)
    other_parts = await finish(client, sender, uuid, "a.pdf", parts + 1)

    assert once.status_code == twice.status_code == 200
    assert once.json()["file_uuid"] == twice.json()["file_uuid"] == uuid
    assert once.json()["file_url"] == twice.json()["file_url"]
    assert (await fetch(client, twice.json()["file_url"])).content == data
    assert _field_error(other_parts, "totalparts") == "mismatch"
    assert (await _chunk(client, sender, data, 2, parts, uuid)).status_code == 400


async def test_filenames_cannot_escape_or_deceive(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    sender, recipient = await world.user("a"), await world.user("b")
    await world.follow(recipient, sender)
    names = {
        "../../../../etc/passwd": "passwd",
        "..\\..\\windows\\system.ini": "system.ini",
        "evil\u202egpj.exe": "evilgpj.exe",
        "line\r\nX-Injected: 1.txt": "line X-Injected: 1.txt",
        "..": "file",
        "a" * 300 + ".pdf": "a" * 196 + ".pdf",
    }
    for given, expected in names.items():
        uuid, parts = await send_chunks(client, sender, pdf(1000))
        done = await finish(client, sender, uuid, given, parts)
        sent = await ui_send(client, sender, recipient, done.json()["file_uuid"])
        assert sent.json()["file"]["filename"] == expected
        got = await fetch(client, sent.json()["file"]["url"])
        assert "\n" not in got.headers["content-disposition"]
        assert "X-Injected" not in got.headers
    stray = [p for p in _files(settings.data_dir.parent) if "media" not in p.parts]
    outside = [p for p in stray if not p.name.startswith("dovecote.sqlite3")]
    assert outside == []


async def test_html_is_served_as_a_download_that_cannot_run(
    client: httpx.AsyncClient, world: World
) -> None:
    sender = await world.user()
    page = b"<!doctype html><html><script>alert(document.cookie)</script></html>"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    for name, content, claimed in (("x.html", page, "text/html"), ("x.svg", svg, "image/svg+xml")):
        answer = await client.post(
            UPLOAD,
            files=form(("file", (name, content, claimed)), ("filetype", claimed)),
            headers=sender.auth,
        )
        got = await fetch(client, answer.json()["file_url"])

        assert got.content == content
        assert got.headers["content-type"].startswith("text/plain")
        assert got.headers["content-disposition"].startswith("attachment;")
        assert got.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in got.headers["content-security-policy"]
        assert "default-src 'none'" in got.headers["content-security-policy"]


async def test_a_thumbnail_must_be_an_image_of_a_finished_upload(
    client: httpx.AsyncClient, world: World
) -> None:
    sender = await world.user()
    uuid, _ = await send_chunks(client, sender, pdf(2 * CHUNK))

    early = await thumbnail(client, sender, uuid, jpeg())
    await finish(client, sender, uuid, "a.pdf", 2)
    not_image = await thumbnail(client, sender, uuid, b"<html></html>")

    assert _field_error(early, "parentuuid") == "not_finished"
    assert _field_error(not_image, "file") == "not_an_image"


async def test_bad_form_input_is_a_clear_400(client: httpx.AsyncClient, world: World) -> None:
    sender = await world.user()
    cases = [
        form(("partindex", "x"), ("totalparts", 2), ("file", ("b", b"1", "a/b"))),
        form(("partindex", "undefined"), ("totalparts", 2), ("file", ("b", b"1", "a/b"))),
        form(("duration", "nan"), ("file", ("b", b"1", "a/b"))),
        form(("filename", "a")),
        form(("file", ("b", b"", "a/b"))),
    ]
    for files in cases:
        response = await client.post(UPLOAD, files=files, headers=sender.auth)
        assert response.status_code == 400, (files, response.text)
    as_json = await client.post(UPLOAD, json={"file": "x"}, headers=sender.auth)
    no_token = await client.post(UPLOAD, files=form(("file", ("b", b"1", "a/b"))))
    assert as_json.status_code == 400
    assert no_token.status_code == 401
    done_missing = await client.post(UPLOAD + "?done", json={}, headers=sender.auth)
    assert {e["field"] for e in done_missing.json()["errors"]} == {"uuid", "filename"}


async def test_malformed_links_and_ranges_are_clean_answers(
    client: httpx.AsyncClient, world: World
) -> None:
    sender = await world.user()
    answer = await client.post(
        UPLOAD, files=form(("file", ("a.pdf", pdf(1_000), "application/pdf"))), headers=sender.auth
    )
    url = answer.json()["file_url"]
    base = url.split("?")[0]

    for query in ("exp=²&sig=x", "exp=1&sig=é", "exp=&sig=", "exp=99999999999999999999&sig=a"):
        assert (await fetch(client, f"{base}?{query}")).status_code == 404, query
    # RFC 9110 §14.2: a Range this server does not understand or honour (another unit, digits
    # that are not ASCII, several ranges) is ignored: the whole file. A byte range it reads but
    # that selects nothing (last before first, a zero suffix) is a 416 naming the size.
    whole = await fetch(client, url)
    assert whole.status_code == 200 and whole.content
    for header, status in [
        ("bytes=5-2", 416),
        ("bytes=\u0661-\u0662", 200),
        ("items=0-1", 200),
        ("bytes=0-1,5-6", 200),
        ("bytes=-0", 416),
    ]:
        got = await fetch(client, url, headers={"Range": header.encode()})
        assert got.status_code == status, (header, got.status_code)
        if status == 200:
            assert got.content == whole.content, header
        else:
            assert got.headers["content-range"] == f"bytes */{len(whole.content)}", header
    long_uuid = await client.get("/api/v2/pm/files/" + "a" * 100 + "/", headers=sender.auth)
    assert long_uuid.status_code == 400


async def test_nul_and_garbage_uuids_are_400s(client: httpx.AsyncClient, world: World) -> None:
    sender = await world.user()
    for uuid in ("a\x00b", "../x", "é"):
        done = await client.post(
            UPLOAD + "?done", json={"uuid": uuid, "filename": "x"}, headers=sender.auth
        )
        thumb = await thumbnail(client, sender, uuid, jpeg())
        assert done.status_code == thumb.status_code == 400, uuid
    fetched = await client.get("/api/v2/pm/files/a%00b/", headers=sender.auth)
    assert fetched.status_code == 400
