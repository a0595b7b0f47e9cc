"""ASGI middleware: request body caps, enforced before and while the body is read."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dovecote.core.errors import PayloadTooLarge
from dovecote.core.handlers import render
from dovecote.core.settings import Settings

UPLOAD_PREFIX = "/api/v2/pm/upload"
MULTIPART_OVERHEAD = 64 * 1024


class BodySizeLimit:
    """413 for a declared Content-Length over the cap, or a streamed body growing past it."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.default_cap = settings.max_body_bytes
        self.upload_cap = settings.upload_max_file_size + MULTIPART_OVERHEAD

    def cap_for(self, path: str) -> int:
        return self.upload_cap if path.startswith(UPLOAD_PREFIX) else self.default_cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.cap_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > cap):
            error = PayloadTooLarge(
                f"The request body may be at most {cap} bytes.", code="body_too_large"
            )
            await render(error)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise PayloadTooLarge(
                        f"The request body may be at most {cap} bytes.", code="body_too_large"
                    )
            return message

        await self.app(scope, counted, send)
