"""The storage backends: local directory, and S3 against an in-memory fake of the S3 client
(exact calls) and against a real S3-compatible server (moto's)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from dovecote.core.settings import Settings
from dovecote.uploads import storage as storage_module
from dovecote.uploads.storage import (
    LocalStorage,
    S3Storage,
    StorageMissing,
    assemble,
    create_storage,
    store,
)
from tests.s3_server import new_bucket


class _Missing(Exception):
    def __init__(self) -> None:
        self.response = {"Error": {"Code": "NoSuchKey"}}


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data, self.closed = data, False

    async def read(self, size: int) -> bytes:
        piece, self._data = self._data[:size], self._data[size:]
        return piece

    def close(self) -> None:
        self.closed = True


class FakeS3:
    """The subset of the S3 API the backend uses, with S3's rule on part sizes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.calls: list[str] = []

    async def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:
        self.calls.append("put_object")
        self.objects[Bucket, Key] = Body

    async def get_object(self, Bucket: str, Key: str, Range: str | None = None) -> dict[str, Any]:
        if (Bucket, Key) not in self.objects:
            raise _Missing()
        data = self.objects[Bucket, Key]
        if Range:
            first, _, last = Range.removeprefix("bytes=").partition("-")
            data = data[int(first) : int(last) + 1 if last else None]
        return {"Body": _Body(data)}

    async def create_multipart_upload(self, Bucket: str, Key: str) -> dict[str, str]:
        upload_id = f"u{len(self.uploads)}"
        self.uploads[upload_id] = {}
        return {"UploadId": upload_id}

    async def upload_part(
        self, UploadId: str, PartNumber: int, Body: bytes, **_: Any
    ) -> dict[str, str]:
        self.calls.append("upload_part")
        self.uploads[UploadId][PartNumber] = Body
        return {"ETag": f'"{PartNumber}"'}

    async def complete_multipart_upload(
        self,
        Bucket: str,
        Key: str,
        UploadId: str,
        MultipartUpload: dict[str, Any],
    ) -> None:
        parts = self.uploads.pop(UploadId)
        numbers = [p["PartNumber"] for p in MultipartUpload["Parts"]]
        assert numbers == sorted(parts)
        assert all(len(parts[n]) >= storage_module.S3_PART for n in numbers[:-1])
        self.objects[Bucket, Key] = b"".join(parts[n] for n in numbers)

    async def abort_multipart_upload(self, UploadId: str, **_: Any) -> None:
        self.uploads.pop(UploadId)

    async def delete_objects(self, Bucket: str, Delete: dict[str, Any]) -> None:
        for item in Delete["Objects"]:
            self.objects.pop((Bucket, item["Key"]), None)


@pytest.fixture
def fake() -> FakeS3:
    return FakeS3()


@pytest.fixture
def s3(fake: FakeS3, monkeypatch: pytest.MonkeyPatch) -> S3Storage:
    monkeypatch.setattr(storage_module, "S3_PART", 64 * 1024)

    @asynccontextmanager
    async def client() -> AsyncIterator[FakeS3]:
        yield fake

    return S3Storage("bucket", client, prefix="/dovecote/")


async def _pieces(data: bytes, size: int = 10_000) -> AsyncIterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


async def _read(storage: Any, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([piece async for piece in storage.read(key, start, end)])


async def test_s3_small_objects_are_one_put(s3: S3Storage, fake: FakeS3) -> None:
    data = os.urandom(5_000)

    written = await store(s3, "files/ab/x", _pieces(data))

    assert fake.calls == ["put_object"]
    assert fake.objects["bucket", "dovecote/files/ab/x"] == data
    assert written.md5 == hashlib.md5(data).hexdigest()
    assert await _read(s3, "files/ab/x", 10, 19) == data[10:20]


async def test_s3_assembles_parts_into_a_multipart_upload(s3: S3Storage, fake: FakeS3) -> None:
    data = os.urandom(300_000)
    keys = [f"parts/u/{i:06d}" for i in range(3)]
    for i, key in enumerate(keys):
        await store(s3, key, _pieces(data[i * 100_000 : (i + 1) * 100_000]))

    fake.calls.clear()
    written = await assemble(s3, keys, "files/u/u")
    await s3.delete(keys)

    assert fake.calls == ["upload_part"] * 3  # each 100,000-byte part fills an S3 part
    assert await _read(s3, "files/u/u") == data
    assert written.size == len(data)
    assert written.md5 == hashlib.md5(data).hexdigest()
    assert set(fake.objects) == {("bucket", "dovecote/files/u/u")}


async def test_s3_failed_upload_is_aborted_and_missing_keys_are_reported(
    s3: S3Storage, fake: FakeS3
) -> None:
    with pytest.raises(OverflowError):
        await store(s3, "files/a/a", _pieces(os.urandom(200_000)), limit=150_000)
    assert fake.uploads == {}
    assert fake.objects == {}
    with pytest.raises(StorageMissing):
        await _read(s3, "files/a/a")


async def test_local_storage_refuses_keys_outside_its_root(tmp_path: Path) -> None:
    local = LocalStorage(tmp_path)
    for key in ("../etc/passwd", "files/../../x", "/abs", "files/a b"):
        with pytest.raises(ValueError):
            local.path(key)
    written = await store(local, "files/ok/ok", _pieces(b"hello"))
    assert written.size == 5
    assert await _read(local, "files/ok/ok", 1, 3) == b"ell"
    with pytest.raises(StorageMissing):
        await _read(local, "files/ok/missing")


def test_storage_is_chosen_by_settings(tmp_path: Path) -> None:
    local = create_storage(Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
    assert isinstance(local, LocalStorage)
    assert local.root == (tmp_path / "media").resolve()
    with pytest.raises(ValueError, match="S3_BUCKET"):  # the settings themselves refuse
        Settings(_env_file=None, data_dir=tmp_path, storage="s3")  # type: ignore[call-arg]


# --- against a real S3-compatible server (moto's, tests/s3_server.py) --------------------------


@pytest.fixture
def real_s3(s3_endpoint: str, tmp_path: Path) -> tuple[S3Storage, Any]:
    """The backend as `dovecote serve` builds it from the settings, and a boto3 client that
    looks into its bucket."""
    import boto3

    values = new_bucket(s3_endpoint)
    backend = create_storage(Settings(_env_file=None, data_dir=tmp_path, **values))  # type: ignore[call-arg]
    assert isinstance(backend, S3Storage)
    look = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=values["s3_region"],
        aws_access_key_id=values["s3_access_key_id"],
        aws_secret_access_key=values["s3_secret_access_key"],
    )
    return backend, (look, values["s3_bucket"])


def _keys(look: Any) -> set[str]:
    client, bucket = look
    return {item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])}


async def test_real_s3_stores_reads_ranges_and_deletes(real_s3: tuple[S3Storage, Any]) -> None:
    backend, look = real_s3
    data = os.urandom(5_000)

    written = await store(backend, "files/ab/x", _pieces(data))

    assert _keys(look) == {"media/files/ab/x"}
    assert written.md5 == hashlib.md5(data).hexdigest()
    assert await _read(backend, "files/ab/x") == data
    assert await _read(backend, "files/ab/x", 10, 19) == data[10:20]
    await backend.delete(["files/ab/x"])
    assert _keys(look) == set()
    with pytest.raises(StorageMissing):
        await _read(backend, "files/ab/x")


async def test_real_s3_assembles_chunks_past_the_part_size(real_s3: tuple[S3Storage, Any]) -> None:
    backend, look = real_s3
    size = storage_module.S3_PART // 2 + 1  # three chunks make two S3 parts, one at least 5 MiB
    data = os.urandom(3 * size)
    keys = [f"parts/u/{i:06d}" for i in range(3)]
    for i, key in enumerate(keys):
        await store(backend, key, _pieces(data[i * size : (i + 1) * size], 1 << 20))

    written = await assemble(backend, keys, "files/u/u")
    await backend.delete(keys)

    assert _keys(look) == {"media/files/u/u"}
    assert written.size == len(data) and written.md5 == hashlib.md5(data).hexdigest()
    assert await _read(backend, "files/u/u", size - 5, size + 4) == data[size - 5 : size + 5]


async def test_real_s3_aborts_an_upload_over_its_limit(real_s3: tuple[S3Storage, Any]) -> None:
    backend, look = real_s3
    limit = storage_module.S3_PART + 100

    with pytest.raises(OverflowError):
        await store(backend, "files/a/a", _pieces(os.urandom(limit + 1), 1 << 20), limit=limit)

    client, bucket = look
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert _keys(look) == set()
