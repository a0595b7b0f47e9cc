"""Who may use a finished file: attaching it to a message, fetching its bytes, and expiry.

A file is *live* while it waits to be sent (unattached, until it expires) or while a live
message carries it; a message deleted or hidden lets go of it, and cleanup removes it later.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from dovecote.auth.principal import Principal
from dovecote.core import clock
from dovecote.core.db import Database, standalone_unit
from dovecote.core.errors import InvalidInput, NotFound
from dovecote.core.settings import Settings
from dovecote.uploads import repository as repo
from dovecote.uploads.files import Linker
from dovecote.uploads.service import part_key
from dovecote.uploads.storage import Storage

log = logging.getLogger("dovecote")

CLEANUP_BATCH = 500


@dataclass(frozen=True)
class Attachment:
    """A finished upload about to be carried by a message; shaped like a message row's file
    columns so that `Linker.file_out` can describe it."""

    file_id: int
    file_uuid: str
    file_name: str
    file_size: int
    file_mimetype: str
    file_duration: float | None
    file_thumbnail_uuid: str | None


def _expiry(settings: Settings) -> datetime:
    return clock.now() - timedelta(seconds=settings.upload_pending_seconds)


async def _is_live(session: AsyncSession, row: Row[Any], settings: Settings) -> bool:
    if not row.attached:
        return bool(row.created_at >= _expiry(settings))
    return await repo.is_carried(session, row.parent_id or row.id)


async def attachment_for(
    session: AsyncSession, settings: Settings, sender_id: int, file_uuid: str
) -> Attachment:
    """The sender's finished upload with this uuid (a thumbnail's uuid stands for its parent);
    the same field error whether the uuid is unknown, unfinished or someone else's."""
    row = await repo.owned_file(session, sender_id, file_uuid)
    if row is not None and row.parent_id is not None:
        row = await repo.parent_of(session, row.parent_id)
    if row is None or not row.finished or not await _is_live(session, row, settings):
        raise InvalidInput.field(
            "file_uuid", "does_not_exist", "No finished upload of yours has this uuid."
        )
    return Attachment(
        file_id=row.id,
        file_uuid=row.uuid,
        file_name=row.filename,
        file_size=row.filesize,
        file_mimetype=row.mimetype,
        file_duration=row.duration,
        file_thumbnail_uuid=await repo.thumbnail_uuid(session, row.id),
    )


async def attach(session: AsyncSession, attachment: Attachment) -> None:
    await repo.mark_attached(session, attachment.file_id)


# --- fetching --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    uuid: str
    storage_key: str
    filename: str
    mimetype: str
    filesize: int
    md5: str | None


def _stored(row: Row[Any]) -> Stored:
    return Stored(row.uuid, row.storage_key, row.filename, row.mimetype, row.filesize, row.md5)


def _no_file() -> NotFound:
    return NotFound("No such file, or the link has expired.", code="file_not_found")


async def access_by_link(
    session: AsyncSession, settings: Settings, links: Linker, uuid: str, expires: str, sig: str
) -> Stored:
    """A signed link's file, while the link is valid and the file live."""
    if not links.verify(uuid, expires, sig):
        raise _no_file()
    row = await repo.file_by_uuid(session, uuid)
    if row is None or not row.finished or not await _is_live(session, row, settings):
        raise _no_file()
    return _stored(row)


async def access_file(
    session: AsyncSession, settings: Settings, user: Principal, uuid: str
) -> Stored:
    """A file for a bearer of a token: its uploader, or a member of a thread carrying it."""
    row = await repo.file_by_uuid(session, uuid)
    if row is None or not row.finished:
        raise _no_file()
    if row.owner_id == user.id:
        if not await _is_live(session, row, settings):
            raise _no_file()
    elif not await repo.carried_to(session, user.id, row.parent_id or row.id):
        raise _no_file()
    return _stored(row)


# --- expiry ----------------------------------------------------------------------------------


def _keys(row: Row[Any]) -> list[str]:
    keys = [row.storage_key]
    if not row.finished:
        keys += [part_key(row.uuid, i) for i in range(row.total_parts or row.parts_received + 1)]
    return keys


async def erase_files_of(session: AsyncSession, owner_id: int) -> list[str]:
    """Delete every file a user uploaded (a hard delete of the user); returns the storage keys
    to remove once the transaction has committed."""
    rows = await repo.delete_files(session, await repo.files_of(session, owner_id))
    return [key for row in rows for key in _keys(row)]


@dataclass(frozen=True)
class Garbage:
    files: int
    keys: list[str]
    more: bool


async def collect_garbage(session: AsyncSession, settings: Settings) -> Garbage:
    """Delete one batch of expired and released files (and their thumbnails)."""
    expired = await repo.expired_files(session, _expiry(settings), CLEANUP_BATCH)
    released = await repo.released_files(session, CLEANUP_BATCH)
    rows = await repo.delete_files(session, expired + released)
    more = CLEANUP_BATCH in (len(expired), len(released))
    return Garbage(len(rows), [key for row in rows for key in _keys(row)], more)


async def cleanup(database: Database, settings: Settings, storage: Storage) -> int:
    """Remove every expired or released file, in batches, each its own unit of work; returns
    how many. The bytes go after the commit: a rolled-back batch keeps its files."""
    total = 0
    while True:
        async with standalone_unit(database) as uow:
            garbage = await collect_garbage(uow.session, settings)

            async def drop(keys: list[str] = garbage.keys) -> None:
                await storage.delete(keys)

            uow.after_commit(drop)
        total += garbage.files
        if not garbage.more:
            return total


async def cleanup_forever(database: Database, settings: Settings, storage: Storage) -> None:
    interval = settings.upload_cleanup_interval_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            removed = await cleanup(database, settings, storage)
            if removed:
                log.info("removed %d expired or released uploads", removed)
        except Exception:
            log.warning("upload cleanup failed; trying again later", exc_info=True)


def start_cleanup(
    database: Database, settings: Settings, storage: Storage
) -> asyncio.Task[None] | None:
    if settings.upload_cleanup_interval_seconds <= 0:
        return None
    return asyncio.create_task(cleanup_forever(database, settings, storage))
