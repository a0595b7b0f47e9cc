"""Thumbnails (SPEC §4): an image standing for an uploaded file, shown before it is opened.

The real UI uploads one right after finishing a file (the picture itself, or a JPEG drawn from a
PDF or video) and then sends the message with the thumbnail's uuid.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from dovecote.auth.principal import Principal
from dovecote.core.errors import InvalidInput
from dovecote.uploads import repository as repo
from dovecote.uploads.files import clean_filename, detect_mimetype
from dovecote.uploads.schemas import ThumbnailIn, ThumbnailOut
from dovecote.uploads.service import (
    Context,
    Incoming,
    check_md5,
    discard_on_error,
    receive_whole,
    record_whole_file,
    unknown_upload,
)


async def upload_thumbnail(
    ctx: Context, user: Principal, form: ThumbnailIn, incoming: Incoming
) -> ThumbnailOut:
    """An image standing for an uploaded file; a new one replaces the previous one."""
    stored = uuid, key, written = await receive_whole(ctx, form.totalfilesize, incoming)
    async with discard_on_error(ctx.storage, key):
        parent = await _thumbnail_parent(ctx, user, form.parentuuid)
        check_md5(form.md5, written)
        mimetype = detect_mimetype(written.head)
        if not mimetype.startswith("image/"):
            raise InvalidInput.field("file", "not_an_image", "A thumbnail must be an image.")
        await _replace_thumbnails(ctx, parent.id)
        await record_whole_file(
            ctx,
            user,
            stored,
            filename=clean_filename(form.filename or incoming.filename, "thumbnail"),
            mimetype=mimetype,
            parent_id=parent.id,
        )
    return ThumbnailOut(file_url=ctx.links.link(uuid), file_uuid=uuid, parent_file_uuid=parent.uuid)


async def _thumbnail_parent(ctx: Context, user: Principal, parent_uuid: str) -> Row[Any]:
    parent = await repo.owned_file(ctx.uow.session, user.id, parent_uuid, lock=True)
    if parent is None or parent.parent_id is not None:
        raise unknown_upload("parentuuid")
    if not parent.finished:
        raise InvalidInput.field(
            "parentuuid", "not_finished", "Finish the upload (?done) before its thumbnail."
        )
    if parent.attached:
        raise InvalidInput.field(
            "parentuuid", "already_sent", "This file was already sent; its thumbnail is fixed."
        )
    return parent


async def _replace_thumbnails(ctx: Context, parent_id: int) -> None:
    old = await repo.thumbnails_of(ctx.uow.session, parent_id)
    if not old:
        return
    await repo.delete_files(ctx.uow.session, [r.id for r in old])
    keys = [r.storage_key for r in old]

    async def drop() -> None:
        await ctx.storage.delete(keys)

    ctx.uow.after_commit(drop)
