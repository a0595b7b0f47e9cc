"""All SQL of uploads: the `files` table, and which messages and threads carry a file.

A file row is pending while its chunks arrive (`filesize` counts the bytes received so far),
finished once assembled, and attached once a message carries it. Thumbnails are rows of their
own with `parent_id` set; they live and die with their parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from dovecote.models import File, Message, ThreadMember, ThreadMessage

_thumbnail = aliased(File)

# For message queries (pm.repository.MESSAGE_COLUMNS): the newest thumbnail of the message's file.
THUMBNAIL_UUID = (
    select(_thumbnail.uuid)
    .where(_thumbnail.parent_id == Message.file_id)
    .order_by(_thumbnail.id.desc())
    .limit(1)
    .correlate(Message)
    .scalar_subquery()
    .label("file_thumbnail_uuid")
)

_FILE = (
    File.id,
    File.uuid,
    File.owner_id,
    File.parent_id,
    File.filename,
    File.mimetype,
    File.filesize,
    File.duration,
    File.storage_key,
    File.total_parts,
    File.parts_received,
    File.finished,
    File.attached,
    File.md5,
    File.created_at,
)


async def insert_file(session: AsyncSession, **values: Any) -> int:
    result = await session.execute(insert(File).values(**values).returning(File.id))
    return int(result.scalar_one())


async def count_pending(session: AsyncSession, owner_id: int, since: datetime) -> int:
    """Uploads of the owner not yet attached to a message and not yet expired."""
    query = select(func.count()).where(
        File.owner_id == owner_id, File.attached.is_(False), File.created_at >= since
    )
    return int(await session.scalar(query) or 0)


async def owned_file(
    session: AsyncSession, owner_id: int, uuid: str, *, lock: bool = False
) -> Row[Any] | None:
    """The owner's upload with this uuid; None for a missing one and for another user's."""
    query = select(*_FILE).where(File.uuid == uuid, File.owner_id == owner_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).first()


async def file_by_uuid(session: AsyncSession, uuid: str) -> Row[Any] | None:
    return (await session.execute(select(*_FILE).where(File.uuid == uuid))).first()


async def record_part(session: AsyncSession, file_id: int, index: int, size: int) -> bool:
    """Count part `index` as received, unless another request got there first."""
    result = await session.execute(
        update(File)
        .where(File.id == file_id, File.parts_received == index, File.finished.is_(False))
        .values(parts_received=File.parts_received + 1, filesize=File.filesize + size)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def finish_file(
    session: AsyncSession,
    file_id: int,
    *,
    filename: str,
    mimetype: str,
    filesize: int,
    md5: str,
    now: datetime,
) -> None:
    await session.execute(
        update(File)
        .where(File.id == file_id)
        .values(
            filename=filename,
            mimetype=mimetype,
            filesize=filesize,
            md5=md5,
            finished=True,
            finished_at=now,
        )
    )


async def rename_file(session: AsyncSession, file_id: int, filename: str) -> None:
    await session.execute(update(File).where(File.id == file_id).values(filename=filename))


async def thumbnails_of(session: AsyncSession, parent_id: int) -> list[Row[Any]]:
    query = select(File.id, File.storage_key).where(File.parent_id == parent_id)
    return list(await session.execute(query))


async def parent_of(session: AsyncSession, file_id: int) -> Row[Any] | None:
    return (await session.execute(select(*_FILE).where(File.id == file_id))).first()


async def thumbnail_uuid(session: AsyncSession, parent_id: int) -> str | None:
    query = select(File.uuid).where(File.parent_id == parent_id).order_by(File.id.desc()).limit(1)
    found = await session.scalar(query)
    return str(found) if found is not None else None


async def mark_attached(session: AsyncSession, file_id: int) -> None:
    """The file and its thumbnails now belong to a message: they no longer expire."""
    await session.execute(
        update(File).where(or_(File.id == file_id, File.parent_id == file_id)).values(attached=True)
    )


def _carried(file_id: int) -> Any:
    return and_(Message.file_id == file_id, Message.status == "created")


async def is_carried(session: AsyncSession, file_id: int) -> bool:
    """Whether a live message carries the file (a hidden one has let go of it)."""
    return bool(await session.scalar(select(exists().where(_carried(file_id)))))


async def carried_to(session: AsyncSession, user_id: int, file_id: int) -> bool:
    """Whether a live message carrying the file is listed in a thread the user is in."""
    query = select(
        exists()
        .where(_carried(file_id))
        .where(ThreadMessage.message_id == Message.id)
        .where(
            ThreadMember.thread_id == ThreadMessage.thread_id,
            ThreadMember.user_id == user_id,
            ThreadMessage.message_id > ThreadMember.cleared_before_id,
        )
    )
    return bool(await session.scalar(query))


# --- expiry ----------------------------------------------------------------------------------

_GONE = (File.id, File.uuid, File.storage_key, File.finished, File.total_parts, File.parts_received)


async def delete_files(session: AsyncSession, file_ids: Sequence[int]) -> list[Row[Any]]:
    """Delete the files and their thumbnails; returns what storage must let go of."""
    if not file_ids:
        return []
    condition = or_(File.id.in_(file_ids), File.parent_id.in_(file_ids))
    rows = list(await session.execute(select(*_GONE).where(condition)))
    await session.execute(delete(File).where(condition))
    return rows


async def files_of(session: AsyncSession, owner_id: int) -> list[int]:
    return [int(i) for i in await session.scalars(select(File.id).where(File.owner_id == owner_id))]


async def expired_files(session: AsyncSession, before: datetime, limit: int) -> list[int]:
    """Uploads never attached to a message, older than `before` (thumbnails go with parents)."""
    query = (
        select(File.id)
        .where(File.attached.is_(False), File.created_at < before)
        .order_by(File.created_at)
        .limit(limit)
    )
    return [int(i) for i in await session.scalars(query)]


async def released_files(session: AsyncSession, limit: int) -> list[int]:
    """Attached files no live message carries any more (their messages were deleted)."""
    carried = exists().where(Message.file_id == File.id, Message.status == "created")
    query = (
        select(File.id)
        .where(File.attached.is_(True), File.parent_id.is_(None), ~carried)
        .order_by(File.id)
        .limit(limit)
    )
    return [int(i) for i in await session.scalars(query)]
