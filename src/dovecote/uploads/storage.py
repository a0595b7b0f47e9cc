"""Where upload bytes live: a local directory or an S3-compatible bucket.

Every byte moves in pieces of at most `PIECE` bytes (S3 parts: `S3_PART`): a chunk is copied
from the request's spooled file to storage, a finished upload is assembled by streaming its parts
into the final object while its md5 is computed, and a download streams a byte range. Nothing
ever holds a whole file in memory. Keys are made by the uploads service, never by clients.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio

from dovecote.core.settings import Settings

PIECE = 256 * 1024
HEAD = 8192  # bytes kept from the start of a file to detect its type
S3_PART = 8 * 1024 * 1024  # S3 multipart parts must be >= 5 MiB, except the last
_KEY = re.compile(r"^[a-z]+(/[A-Za-z0-9._-]+)+$")


class StorageMissing(Exception):
    """The object is not in storage."""


class Sink(Protocol):
    async def write(self, data: bytes) -> None: ...
    async def commit(self) -> None: ...
    async def abort(self) -> None: ...


class Storage(Protocol):
    async def open_sink(self, key: str, *, durable: bool = True) -> Sink:
        """A writer that makes `key` appear whole on commit. `durable=False` (chunks, which
        are transient) skips waiting for the disk."""
        ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes start..end (inclusive; None: to the end), in pieces."""
        ...

    async def delete(self, keys: Sequence[str]) -> None: ...


@dataclass(frozen=True)
class Written:
    size: int
    md5: str
    head: bytes


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key:
        raise ValueError(f"bad storage key {key!r}")
    return key


async def store(
    storage: Storage,
    key: str,
    pieces: AsyncIterator[bytes],
    *,
    limit: int | None = None,
    durable: bool = True,
) -> Written:
    """Stream `pieces` into `key`; md5 and the head are computed on the way.

    Raises OverflowError (and stores nothing) once more than `limit` bytes arrive."""
    sink = await storage.open_sink(key, durable=durable)
    digest, head, size = hashlib.md5(usedforsecurity=False), bytearray(), 0
    try:
        async for piece in pieces:
            size += len(piece)
            if limit is not None and size > limit:
                raise OverflowError(size)
            digest.update(piece)
            if len(head) < HEAD:
                head += piece[: HEAD - len(head)]
            await sink.write(piece)
    except BaseException:
        await sink.abort()
        raise
    await sink.commit()
    return Written(size, digest.hexdigest(), bytes(head))


async def assemble(
    storage: Storage, part_keys: Sequence[str], key: str, *, limit: int | None = None
) -> Written:
    """Append the parts, in order, into `key`."""

    async def pieces() -> AsyncIterator[bytes]:
        for part in part_keys:
            async for piece in storage.read(part):
                yield piece

    return await store(storage, key, pieces(), limit=limit)


# --- local directory -------------------------------------------------------------------------


class _LocalSink:
    def __init__(self, final: Path, handle: Any, temporary: Path, durable: bool) -> None:
        self._final, self._handle, self._temporary = final, handle, temporary
        self._durable = durable

    async def write(self, data: bytes) -> None:
        await self._handle.write(data)

    async def commit(self) -> None:
        await self._handle.flush()
        if self._durable:
            await anyio.to_thread.run_sync(os.fsync, self._handle.fileno())
        await self._handle.aclose()
        await anyio.to_thread.run_sync(os.replace, self._temporary, self._final)

    async def abort(self) -> None:
        await self._handle.aclose()
        await anyio.Path(self._temporary).unlink(missing_ok=True)


class LocalStorage:
    """Files under one directory; written to a temporary name, then renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def open_sink(self, key: str, *, durable: bool = True) -> Sink:
        final = self.path(key)
        await anyio.Path(final.parent).mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
        handle = await anyio.open_file(temporary, "xb")
        return _LocalSink(final, handle, temporary, durable)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        try:
            handle = await anyio.open_file(self.path(key), "rb")
        except FileNotFoundError as exc:
            raise StorageMissing(key) from exc
        async with handle:
            await handle.seek(start)
            left = None if end is None else end - start + 1
            while left is None or left > 0:
                piece = await handle.read(PIECE if left is None else min(PIECE, left))
                if not piece:
                    return
                if left is not None:
                    left -= len(piece)
                yield piece

    async def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            await anyio.Path(self.path(key)).unlink(missing_ok=True)


# --- S3-compatible bucket --------------------------------------------------------------------

ClientFactory = Callable[[], AbstractAsyncContextManager[Any]]


class _S3Sink:
    """Buffers up to one S3 part; small objects are one PUT, large ones a multipart upload."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        self._storage, self._key = storage, storage.full_key(key)
        self._buffer = bytearray()
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    async def _open(self) -> Any:
        if self._client is None:
            self._client = await self._stack.enter_async_context(self._storage.client())
        return self._client

    async def _flush_part(self) -> None:
        client = await self._open()
        bucket = self._storage.bucket
        if self._upload_id is None:
            answer = await client.create_multipart_upload(Bucket=bucket, Key=self._key)
            self._upload_id = answer["UploadId"]
        number = len(self._parts) + 1
        answer = await client.upload_part(
            Bucket=bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})
        self._buffer.clear()

    async def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= S3_PART:
            await self._flush_part()

    async def commit(self) -> None:
        client, bucket = await self._open(), self._storage.bucket
        try:
            if self._upload_id is None:
                await client.put_object(Bucket=bucket, Key=self._key, Body=bytes(self._buffer))
            else:
                if self._buffer:
                    await self._flush_part()
                await client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        finally:
            await self._stack.aclose()

    async def abort(self) -> None:
        try:
            if self._upload_id is not None:
                await self._client.abort_multipart_upload(
                    Bucket=self._storage.bucket, Key=self._key, UploadId=self._upload_id
                )
        finally:
            await self._stack.aclose()


class S3Storage:
    """Objects in one bucket (AWS S3, MinIO, Garage, R2...), for several server machines."""

    def __init__(self, bucket: str, client: ClientFactory, prefix: str = "") -> None:
        self.bucket, self.client = bucket, client
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def full_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def open_sink(self, key: str, *, durable: bool = True) -> Sink:
        return _S3Sink(self, key)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        extra = {"Range": f"bytes={start}-{'' if end is None else end}"} if start or end else {}
        async with self.client() as client:
            try:
                answer = await client.get_object(
                    Bucket=self.bucket, Key=self.full_key(key), **extra
                )
            except Exception as exc:
                if _is_missing(exc):
                    raise StorageMissing(key) from exc
                raise
            body = answer["Body"]
            try:
                while piece := await body.read(PIECE):
                    yield piece
            finally:
                body.close()

    async def delete(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        async with self.client() as client:
            for at in range(0, len(keys), 1000):
                batch = [{"Key": self.full_key(k)} for k in keys[at : at + 1000]]
                await client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )


def _is_missing(exc: Exception) -> bool:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Code")) in {"NoSuchKey", "404", "NotFound"}


def _aioboto3_client(settings: Settings) -> ClientFactory:
    try:
        import aioboto3
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RuntimeError(
            "DOVECOTE_STORAGE=s3 needs the s3 extra: pip install 'dovecote[s3]'"
        ) from exc
    session = aioboto3.Session()
    secret = settings.s3_secret_access_key

    def client() -> AbstractAsyncContextManager[Any]:
        return session.client(  # type: ignore[no-any-return]
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
        )

    return client


def create_storage(settings: Settings) -> Storage:
    if settings.storage == "s3":
        assert settings.s3_bucket, "Settings refuse DOVECOTE_STORAGE=s3 without a bucket"
        return S3Storage(settings.s3_bucket, _aioboto3_client(settings), settings.s3_prefix)
    return LocalStorage(settings.effective_media_dir)
