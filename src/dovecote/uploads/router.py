"""Upload endpoints (SPEC §4) and the file download. Thin: parse, call the service, shape."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ValidationError
from python_multipart.exceptions import FormParserError
from starlette.datastructures import FormData, UploadFile

from dovecote.auth.dependencies import Credentials, CurrentUser, current_user
from dovecote.core.deps import AppSettings, UoW
from dovecote.core.errors import (
    InvalidInput,
    NotFound,
    RangeNotSatisfiable,
)
from dovecote.core.handlers import render
from dovecote.core.openapi import errors
from dovecote.core.ratelimit import Limiter, client_ip
from dovecote.core.requests import field_errors, read_body_dict
from dovecote.core.routing import Router
from dovecote.core.state import app_state
from dovecote.uploads import access, service, thumbnails
from dovecote.uploads.files import Linker, content_disposition
from dovecote.uploads.schemas import (
    MAX_UUID,
    UPLOAD_FORM_SCHEMA,
    UUID_PATTERN,
    ChunkIn,
    ChunkOut,
    FileOut,
    FinishIn,
    ThumbnailIn,
    ThumbnailOut,
    UploadedOut,
    WholeFileIn,
)
from dovecote.uploads.storage import PIECE, Storage, StorageMissing, create_storage

router = Router(prefix="/api/v2/pm", tags=["attachments"])
M = TypeVar("M", bound=BaseModel)

SANDBOX = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"


def storage_of(request: Request) -> Storage:
    state = request.app.state
    if getattr(state, "uploads_storage", None) is None:
        state.uploads_storage = create_storage(app_state(request).settings)
    storage: Storage = state.uploads_storage
    return storage


def linker(request: Request) -> Linker:
    state = app_state(request)
    return Linker.for_server(state.jwt_secret, state.settings, str(request.base_url))


def file_links(request: Request) -> Callable[[Any], FileOut | None]:
    """For pm.context.Context.file_links: the file object of a message row, freshly signed."""
    return linker(request).file_out


async def _context(request: Request, uow: UoW, settings: AppSettings) -> service.Context:
    return service.Context(uow, settings, storage_of(request), linker(request))


Ctx = Annotated[service.Context, Depends(_context)]


# --- reading the request ---------------------------------------------------------------------


@contextmanager
def _malformed_is_400() -> Iterator[None]:
    # python-multipart raises its own errors for a broken body, which Starlette lets through.
    try:
        yield
    except FormParserError as exc:
        raise InvalidInput.field(
            "non_field_errors", "parse_error", f"Malformed body: {exc}"
        ) from exc


async def _multipart(request: Request) -> FormData:
    """The upload's form; its size was capped by core.middleware.BodySizeLimit."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "multipart/form-data":
        raise InvalidInput.field("file", "required", "Send the file as multipart/form-data.")
    with _malformed_is_400():
        return await request.form(max_files=1, max_fields=64)


def _validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise field_errors(exc) from exc


def _fields(form: FormData) -> dict[str, Any]:
    return {k: v for k, v in form.multi_items() if isinstance(v, str)}


async def _pieces(upload: UploadFile) -> AsyncIterator[bytes]:
    await upload.seek(0)
    while piece := await upload.read(PIECE):
        yield piece


def _incoming(form: FormData) -> service.Incoming:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidInput.field("file", "required", "Send the file in the `file` part.")
    size = upload.size if upload.size is not None else upload.file.seek(0, 2)
    return service.Incoming(upload.filename, size, _pieces(upload))


# --- uploading -------------------------------------------------------------------------------


@router.post(
    "/upload/",
    response_model=UploadedOut | ThumbnailOut | ChunkOut,
    responses=errors(400, 401, 409, 413, 429),
    openapi_extra={
        "parameters": [
            {
                "name": "done",
                "in": "query",
                "required": False,
                "allowEmptyValue": True,
                "schema": {"type": "string"},
                "description": "Present: finish a chunked upload (fields uuid, filename, ...).",
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": UPLOAD_FORM_SCHEMA},
                "application/json": {"schema": FinishIn.model_json_schema()},
                "application/x-www-form-urlencoded": {"schema": FinishIn.model_json_schema()},
            },
        },
    },
    summary="Upload a file, a chunk or a thumbnail; finish a chunked upload with ?done",
)
async def upload(
    request: Request, ctx: Ctx, user: CurrentUser, limiter: Limiter
) -> UploadedOut | ThumbnailOut | ChunkOut:
    await limiter.check("upload", user=user.id, ip=client_ip(request))
    if "done" in request.query_params:
        with _malformed_is_400():
            data = await read_body_dict(request)
        return await service.finish_upload(ctx, user, _validate(FinishIn, data))
    form = await _multipart(request)
    try:
        fields = _fields(form)
        if "parentuuid" in fields:
            thumbnail = _validate(ThumbnailIn, fields)
            return await thumbnails.upload_thumbnail(ctx, user, thumbnail, _incoming(form))
        if "partindex" in fields or "totalparts" in fields:
            chunk = _validate(ChunkIn, fields)
            content_range = request.headers.get("content-range")
            return await service.upload_chunk(ctx, user, chunk, _incoming(form), content_range)
        whole = _validate(WholeFileIn, fields)
        return await service.upload_file(ctx, user, whole, _incoming(form))
    finally:
        await form.close()


# --- downloading -----------------------------------------------------------------------------

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d{0,15})\s*-\s*(\d{0,15})\s*$", re.ASCII)


def byte_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """(first, last) for a satisfiable single range; None to send everything (no header, or
    one this server does not honour, such as several ranges); False when unsatisfiable."""
    match = _RANGE.match(header) if header else None
    if match is None or not (match[1] or match[2]):
        return None
    if match[1]:
        first = int(match[1])
        last = min(int(match[2]), size - 1) if match[2] else size - 1
        if first >= size or (match[2] and int(match[2]) < first):
            return False
        return first, last
    suffix = int(match[2])
    if suffix == 0 or size == 0:
        return False
    return max(size - suffix, 0), size - 1


def _headers(stored: access.Stored, signed: bool) -> dict[str, str]:
    headers = {
        "Content-Disposition": content_disposition(stored.mimetype, stored.filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": SANDBOX,
        "Referrer-Policy": "no-referrer",
        "Accept-Ranges": "bytes",
        "ETag": f'"{stored.md5 or stored.uuid}"',
        "Cache-Control": "private, max-age=3600" if signed else "private, no-cache",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if signed:  # the link is the credential: pdf.js and <canvas> may read it from any origin
        headers["Access-Control-Allow-Origin"] = "*"
    return headers


async def _respond(
    request: Request, storage: Storage, stored: access.Stored, signed: bool
) -> Response:
    headers = _headers(stored, signed)
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    wanted = byte_range(request.headers.get("range"), stored.filesize)
    if wanted is False:
        answer = render(RangeNotSatisfiable("The range is outside the file."))
        answer.headers["Content-Range"] = f"bytes */{stored.filesize}"
        return answer
    first, last = wanted if isinstance(wanted, tuple) else (0, stored.filesize - 1)
    status = 206 if isinstance(wanted, tuple) else 200
    headers["Content-Length"] = str(last - first + 1)
    if status == 206:
        headers["Content-Range"] = f"bytes {first}-{last}/{stored.filesize}"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=stored.mimetype)
    pieces = storage.read(stored.storage_key, first, last)
    try:
        head = await anext(pieces, b"")
    except StorageMissing:
        raise NotFound("No such file.", code="file_not_found") from None

    async def body() -> AsyncIterator[bytes]:
        yield head
        async for piece in pieces:
            yield piece

    return StreamingResponse(body(), status, headers=headers, media_type=stored.mimetype)


@router.get(
    "/files/{uuid}/",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The bytes."},
        206: {"description": "A byte range (Range: bytes=...)."},
        **errors(400, 401, 404, 416),
    },
    summary="A file's bytes, by signed link (?exp=&sig=) or with a bearer token",
)
async def fetch(
    request: Request,
    uow: UoW,
    settings: AppSettings,
    credentials: Credentials,
    uuid: Annotated[str, Path(max_length=MAX_UUID, pattern=UUID_PATTERN)],
    exp: str | None = None,
    sig: str | None = None,
) -> Response:
    session = uow.session
    if exp is not None and sig is not None:
        stored = await access.access_by_link(session, settings, linker(request), uuid, exp, sig)
        signed = True
    else:  # no link: the bearer token decides, read as every other endpoint reads it
        user = await current_user(request, uow, credentials)
        stored = await access.access_file(session, settings, user, uuid)
        signed = False
    return await _respond(request, storage_of(request), stored, signed)


router.add_api_route("/files/{uuid}/", fetch, methods=["HEAD"], include_in_schema=False)
