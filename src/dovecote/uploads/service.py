"""The rules of uploading (SPEC §4): whole files, chunks and finishing. Thumbnails are in
thumbnails.py; attaching, fetching and expiry in access.py.

Only the uploader may touch an upload; anyone else gets the same answer as for a uuid that does
not exist. Chunks arrive in order; a wrong one is refused without harming the upload. Bytes are
copied outside the write transaction where possible (whole files before it, assembly before it)
and under the row lock for chunks (one small part); objects that a failed request or a replaced
row leaves behind are removed again.
"""

from __future__ import annotations

import re
import uuid as uuids
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Row

from dovecote.auth.principal import Principal
from dovecote.core import clock
from dovecote.core.db import UnitOfWork
from dovecote.core.errors import Conflict, InvalidInput, PayloadTooLarge
from dovecote.core.settings import Settings
from dovecote.uploads import repository as repo
from dovecote.uploads.files import Linker, clean_filename, detect_mimetype
from dovecote.uploads.schemas import ChunkIn, ChunkOut, FinishIn, UploadedOut, WholeFileIn
from dovecote.uploads.storage import Storage, StorageMissing, Written, assemble, store

_RANGE = re.compile(r"^\s*bytes\s+(\d{1,15})-(\d{1,15})/(\d{1,15}|\*)\s*$", re.ASCII)


@dataclass(frozen=True)
class Context:
    uow: UnitOfWork
    settings: Settings
    storage: Storage
    links: Linker


@dataclass(frozen=True)
class Incoming:
    """The file part of a request: its declared name, its size and its bytes in pieces."""

    filename: str | None
    size: int
    pieces: AsyncIterator[bytes]


def final_key(uuid: str) -> str:
    return f"files/{uuid[:2]}/{uuid}"


def part_key(uuid: str, index: int) -> str:
    return f"parts/{uuid}/{index:06d}"


def unknown_upload(field: str) -> InvalidInput:
    return InvalidInput.field(field, "does_not_exist", "No upload of yours has this uuid.")


def _too_large(settings: Settings) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Files may be at most {settings.upload_max_file_size} bytes.", code="file_too_large"
    )


def check_size(settings: Settings, *sizes: int | None) -> None:
    if any(s is not None and s > settings.upload_max_file_size for s in sizes):
        raise _too_large(settings)


async def _check_pending(ctx: Context, user: Principal) -> None:
    since = clock.now() - timedelta(seconds=ctx.settings.upload_pending_seconds)
    pending = await repo.count_pending(ctx.uow.session, user.id, since)
    if pending >= ctx.settings.upload_max_pending:
        raise PayloadTooLarge(
            f"You have {pending} uploads not yet sent; send or let them expire first.",
            code="too_many_pending_uploads",
        )


async def store_incoming(
    ctx: Context, key: str, incoming: Incoming, limit: int, *, durable: bool = True
) -> Written:
    if incoming.size == 0:
        raise InvalidInput.field("file", "empty", "The file is empty.")
    try:
        return await store(ctx.storage, key, incoming.pieces, limit=limit, durable=durable)
    except OverflowError:
        raise _too_large(ctx.settings) from None


@asynccontextmanager
async def discard_on_error(storage: Storage, *keys: str) -> AsyncIterator[None]:
    """Work after bytes were stored: an error removes them again."""
    try:
        yield
    except BaseException:
        await storage.delete(list(keys))
        raise


def check_md5(expected: str | None, written: Written) -> None:
    if expected is not None and expected != written.md5:
        raise InvalidInput.field("md5", "mismatch", "The md5 does not match the bytes received.")


# --- whole files -----------------------------------------------------------------------------


async def receive_whole(
    ctx: Context, declared_size: int | None, incoming: Incoming
) -> tuple[str, str, Written]:
    """Stream a file that arrives in one request to storage under a new uuid.

    Returns (uuid, storage key, what was written); the caller discards it on error."""
    check_size(ctx.settings, declared_size, incoming.size)
    uuid = str(uuids.uuid4())
    key = final_key(uuid)
    written = await store_incoming(ctx, key, incoming, ctx.settings.upload_max_file_size)
    return uuid, key, written


async def record_whole_file(
    ctx: Context,
    user: Principal,
    stored: tuple[str, str, Written],
    *,
    filename: str,
    mimetype: str,
    duration: float | None = None,
    parent_id: int | None = None,
) -> None:
    """The row of a file that arrived whole (a file or a thumbnail): finished at once."""
    uuid, key, written = stored
    now = clock.now()
    await repo.insert_file(
        ctx.uow.session,
        uuid=uuid,
        owner_id=user.id,
        parent_id=parent_id,
        filename=filename,
        mimetype=mimetype,
        filesize=written.size,
        duration=duration,
        storage_key=key,
        total_parts=1,
        parts_received=1,
        finished=True,
        attached=False,
        md5=written.md5,
        created_at=now,
        finished_at=now,
    )


async def upload_file(
    ctx: Context, user: Principal, form: WholeFileIn, incoming: Incoming
) -> UploadedOut:
    """A file in one request: finished at once."""
    stored = uuid, key, written = await receive_whole(ctx, form.totalfilesize, incoming)
    async with discard_on_error(ctx.storage, key):
        check_md5(form.md5, written)
        await _check_pending(ctx, user)
        await record_whole_file(
            ctx,
            user,
            stored,
            filename=clean_filename(form.filename or incoming.filename),
            mimetype=detect_mimetype(written.head),
            duration=form.duration,
        )
    return UploadedOut(file_url=ctx.links.link(uuid), file_uuid=uuid)


# --- chunks ----------------------------------------------------------------------------------


def _content_range(header: str | None, settings: Settings) -> tuple[int, int] | None:
    """(first byte, length) of a `Content-Range: bytes s-e/total` header, if one was sent."""
    if header is None:
        return None
    match = _RANGE.match(header)
    if match is None or int(match[2]) < int(match[1]):
        raise InvalidInput.field("Content-Range", "invalid", "Expected `bytes start-end/total`.")
    if match[3] != "*":
        check_size(settings, int(match[3]))
    return int(match[1]), int(match[2]) - int(match[1]) + 1


async def _new_upload(ctx: Context, user: Principal, form: ChunkIn, incoming: Incoming) -> Row[Any]:
    await _check_pending(ctx, user)
    uuid = str(uuids.uuid4())
    await repo.insert_file(
        ctx.uow.session,
        uuid=uuid,
        owner_id=user.id,
        filename=clean_filename(form.filename or incoming.filename),
        mimetype="",
        filesize=0,
        storage_key=final_key(uuid),
        total_parts=form.totalparts,
        parts_received=0,
        finished=False,
        attached=False,
        created_at=clock.now(),
    )
    row = await repo.owned_file(ctx.uow.session, user.id, uuid)
    assert row is not None
    return row


async def _continued_upload(ctx: Context, user: Principal, form: ChunkIn) -> Row[Any]:
    assert form.uuid is not None
    row = await repo.owned_file(ctx.uow.session, user.id, form.uuid, lock=True)
    if row is None:
        raise unknown_upload("uuid")
    if row.finished:
        raise InvalidInput.field("uuid", "finished", "This upload is already finished.")
    if form.totalparts != row.total_parts:
        raise InvalidInput.field(
            "totalparts", "mismatch", f"This upload was started with {row.total_parts} parts."
        )
    if form.partindex != row.parts_received:
        raise InvalidInput.field(
            "partindex",
            "unexpected_part",
            f"Expected part {row.parts_received}; the upload continues from there.",
        )
    return row


def _check_offsets(
    ctx: Context, form: ChunkIn, incoming: Incoming, declared: tuple[int, int] | None, at: int
) -> None:
    if form.partbyteoffset is not None and form.partbyteoffset != at:
        raise InvalidInput.field(
            "partbyteoffset", "mismatch", f"This part must start at byte {at}."
        )
    if declared is not None and declared != (at, incoming.size):
        raise InvalidInput.field(
            "Content-Range", "mismatch", f"This part must start at byte {at} and match its size."
        )
    check_size(ctx.settings, at + incoming.size)


async def upload_chunk(
    ctx: Context, user: Principal, form: ChunkIn, incoming: Incoming, content_range: str | None
) -> ChunkOut:
    """One part of a chunked upload, in order: the first one starts the upload."""
    settings = ctx.settings
    if form.totalparts > settings.upload_max_parts:
        raise PayloadTooLarge(
            f"Uploads may have at most {settings.upload_max_parts} parts.", code="too_many_parts"
        )
    if form.partindex >= form.totalparts:
        raise InvalidInput.field("partindex", "invalid", "partindex must be below totalparts.")
    check_size(settings, form.totalfilesize, incoming.size)
    declared = _content_range(content_range, settings)
    if form.uuid is None:
        if form.partindex != 0:
            raise InvalidInput.field("uuid", "required", "Send the uuid of the first answer.")
        _check_offsets(ctx, form, incoming, declared, 0)
        row = await _new_upload(ctx, user, form, incoming)
    else:
        row = await _continued_upload(ctx, user, form)
        _check_offsets(ctx, form, incoming, declared, row.filesize)
    # Parts are transient: not waiting for the disk halves the cost of a chunk. A part lost in
    # a crash makes ?done answer upload_incomplete; the assembled file is durable.
    key = part_key(row.uuid, row.parts_received)
    written = await store_incoming(ctx, key, incoming, incoming.size, durable=False)
    if not await repo.record_part(ctx.uow.session, row.id, row.parts_received, written.size):
        raise Conflict("Another request sent this part at the same time.", code="part_conflict")
    return ChunkOut(file_uuid=row.uuid)


# --- finishing -------------------------------------------------------------------------------


def _check_same(form: FinishIn, row: Row[Any]) -> None:
    """A finish repeated on a finished upload must describe the same file."""
    if form.totalparts is not None and form.totalparts != row.total_parts:
        raise InvalidInput.field(
            "totalparts", "mismatch", f"This upload has {row.total_parts} parts."
        )
    if form.md5 is not None and form.md5 != row.md5:
        raise InvalidInput.field("md5", "mismatch", "The md5 does not match the bytes received.")
    if form.totalfilesize is not None and form.totalfilesize != row.filesize:
        raise InvalidInput.field("totalfilesize", "mismatch", f"The file has {row.filesize} bytes.")


def _check_complete(totalparts: int | None, row: Row[Any]) -> None:
    if totalparts is not None and totalparts != row.total_parts:
        raise InvalidInput.field(
            "totalparts", "mismatch", f"This upload was started with {row.total_parts} parts."
        )
    if row.parts_received < row.total_parts:
        raise InvalidInput.field(
            "uuid",
            "missing_parts",
            f"Received {row.parts_received} of {row.total_parts} parts; "
            f"send part {row.parts_received} next.",
        )


async def _assemble_early(ctx: Context, user: Principal, uuid: str) -> Written | None:
    """Assemble a complete upload before the write transaction starts, so that SQLite's one
    writer is not held while megabytes are copied. Safe: the parts of a complete upload can no
    longer change, and the result is checked again under the row lock."""
    async with ctx.uow.database.read_sessions() as session:  # read-only: nothing to commit
        row = await repo.owned_file(session, user.id, uuid)
    if row is None or row.finished:
        return None
    _check_complete(None, row)
    return await _assemble(ctx, row)


async def finish_upload(ctx: Context, user: Principal, form: FinishIn) -> UploadedOut:
    """`?done`: assemble the parts into the file. Finishing a finished upload answers the same
    (and may still rename it until it is sent)."""
    written = await _assemble_early(ctx, user, form.uuid)
    session = ctx.uow.session
    row = await repo.owned_file(session, user.id, form.uuid, lock=True)
    if row is None:
        raise unknown_upload("uuid")
    filename = clean_filename(form.filename)
    if row.finished:
        _check_same(form, row)
        if filename != row.filename and not row.attached:
            await repo.rename_file(session, row.id, filename)
        return UploadedOut(file_url=ctx.links.link(row.uuid), file_uuid=row.uuid)
    _check_complete(form.totalparts, row)
    written = written or await _assemble(ctx, row)
    async with discard_on_error(ctx.storage, row.storage_key):
        check_md5(form.md5, written)
        if form.totalfilesize is not None and form.totalfilesize != written.size:
            raise InvalidInput.field("totalfilesize", "mismatch", f"Received {written.size} bytes.")
        await repo.finish_file(
            session,
            row.id,
            filename=filename,
            mimetype=detect_mimetype(written.head),
            filesize=written.size,
            md5=written.md5,
            now=clock.now(),
        )
    parts = [part_key(row.uuid, i) for i in range(row.total_parts)]

    async def drop_parts() -> None:
        await ctx.storage.delete(parts)

    ctx.uow.after_commit(drop_parts)
    return UploadedOut(file_url=ctx.links.link(row.uuid), file_uuid=row.uuid)


async def _assemble(ctx: Context, row: Row[Any]) -> Written:
    parts = [part_key(row.uuid, i) for i in range(row.total_parts)]
    try:
        return await assemble(
            ctx.storage, parts, row.storage_key, limit=ctx.settings.upload_max_file_size
        )
    except StorageMissing:
        raise Conflict(
            "A part of this upload is missing from storage; start the upload again.",
            code="upload_incomplete",
        ) from None
    except OverflowError:
        raise _too_large(ctx.settings) from None
