"""ASGI middleware: the one place request bodies are capped, before and while they are read.

Two caps, both from the settings: `DOVECOTE_MAX_BODY_BYTES` for every JSON or form body, and,
for multipart uploads to the upload endpoint only, `DOVECOTE_UPLOAD_MAX_FILE_SIZE` plus the
multipart framing around the file. Nothing downstream checks sizes again."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dovecote.core.errors import DovecoteError, OAuthError, PayloadTooLarge
from dovecote.core.handlers import render
from dovecote.core.settings import Settings

UPLOAD_PREFIX = "/api/v2/pm/upload"
MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and the small fields beside the file


def _too_large(path: str, cap: int) -> DovecoteError:
    message = f"The request body may be at most {cap} bytes."
    if path.startswith("/oauth/"):  # RFC 6749 speaks there
        return OAuthError("invalid_request", message, 413)
    return PayloadTooLarge(message, code="body_too_large")


class BodySizeLimit:
    """413 for a declared Content-Length over the cap, or a streamed body growing past it."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.default_cap = settings.max_body_bytes
        self.upload_cap = settings.upload_max_file_size + MULTIPART_OVERHEAD

    def cap_for(self, path: str, headers: dict[bytes, bytes]) -> int:
        media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if path.startswith(UPLOAD_PREFIX) and media == b"multipart/form-data":
            return self.upload_cap
        return self.default_cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        cap = self.cap_for(scope["path"], headers)
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > cap):
            await render(_too_large(scope["path"], cap))(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise _too_large(scope["path"], cap)
            return message

        await self.app(scope, counted, send)
