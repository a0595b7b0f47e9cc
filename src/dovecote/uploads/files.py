"""Facts about a file that come from its bytes or its name, never from what a client claims:
the detected type, a safe display name, and the signed links that let a browser fetch it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import filetype

from dovecote.core import clock
from dovecote.core.settings import Settings
from dovecote.uploads.schemas import FileOut

MAX_FILENAME = 200
INLINE_KINDS = frozenset({"image", "video", "audio"})
LINK_GRANULARITY = 600  # seconds: links minted within one window are identical (cacheable)
_DROPPED = frozenset({"Cf", "Cs", "Co"})  # invisible: bidi overrides, zero-width, surrogates
_SPACED = frozenset({"Cc", "Zl", "Zp"})  # line breaks, tabs and other controls


def detect_mimetype(head: bytes) -> str:
    """The type of a file from its first bytes. Anything unrecognised is plain text (if it
    decodes as UTF-8) or opaque bytes: HTML and SVG are never given a type a browser runs."""
    kind = filetype.guess(head) if head else None
    if kind is not None:
        return str(kind.mime)
    if b"\x00" not in head:
        for cut in range(4):  # the head may end inside a multi-byte character
            try:
                head[: len(head) - cut].decode("utf-8")
            except UnicodeDecodeError:
                continue
            return "text/plain"
    return "application/octet-stream"


def is_inline(mimetype: str) -> bool:
    return mimetype.split("/", 1)[0] in INLINE_KINDS


def clean_filename(name: str | None, fallback: str = "file") -> str:
    """The last path component, without control or format characters, at most 200 characters
    (the extension kept)."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(
        " " if unicodedata.category(c) in _SPACED else c
        for c in name
        if unicodedata.category(c) not in _DROPPED
    )
    name = " ".join(name.split()).strip()
    if not name.strip("."):
        return fallback
    if len(name) > MAX_FILENAME:
        stem, dot, extension = name.rpartition(".")
        if not dot or len(extension) > 16 or not stem:
            return name[:MAX_FILENAME]
        return stem[: MAX_FILENAME - len(extension) - 1] + "." + extension
    return name


def content_disposition(mimetype: str, filename: str) -> str:
    kind = "inline" if is_inline(mimetype) else "attachment"
    plain = re.sub(r'[^\x20-\x7e]|["\\%]', "_", filename) or "file"
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


@dataclass(frozen=True)
class Linker:
    """Signed, expiring links to files: an HMAC over the file's uuid and the expiry, keyed by a
    key derived from the server's secret. Anyone holding the link may fetch the bytes until it
    expires; nobody can make one up."""

    key: bytes
    base_url: str
    lifetime: int

    @classmethod
    def from_secret(cls, secret: bytes, base_url: str, lifetime: int) -> Linker:
        key = hmac.new(secret, b"dovecote/file-links/v1", hashlib.sha256).digest()
        return cls(key, base_url.rstrip("/"), lifetime)

    @classmethod
    def for_server(cls, secret: bytes, settings: Settings, request_base_url: str) -> Linker:
        """Links on DOVECOTE_PUBLIC_URL when set, else on the base URL the request came to
        (for a WebSocket, pass it with an http(s) scheme)."""
        base = settings.public_url or request_base_url
        return cls.from_secret(secret, base, settings.upload_link_seconds)

    def _signature(self, uuid: str, expires: int) -> str:
        mac = hmac.new(self.key, f"{uuid}:{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode()

    def link(self, uuid: str) -> str:
        now = int(clock.now().timestamp())
        expires = (now + self.lifetime) // LINK_GRANULARITY * LINK_GRANULARITY + LINK_GRANULARITY
        signature = self._signature(uuid, expires)
        return f"{self.base_url}/api/v2/pm/files/{uuid}/?exp={expires}&sig={signature}"

    def verify(self, uuid: str, expires: str, signature: str) -> bool:
        if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
            return False
        expected = self._signature(uuid, int(expires)).encode()
        good = hmac.compare_digest(expected, signature.encode("utf-8", "replace"))
        return good and clock.now().timestamp() < int(expires)

    def file_out(self, row: Any) -> FileOut:
        """The file object of a message row (pm.repository.MESSAGE_COLUMNS), with fresh links."""
        thumbnail_uuid = getattr(row, "file_thumbnail_uuid", None)
        url = self.link(row.file_uuid)
        if thumbnail_uuid:
            thumbnail: str | None = self.link(thumbnail_uuid)
        else:
            thumbnail = url if str(row.file_mimetype).startswith("image/") else None
        return FileOut(
            uuid=row.file_uuid,
            filename=row.file_name,
            filesize=row.file_size,
            mimetype=row.file_mimetype,
            duration=row.file_duration,
            url=url,
            thumbnail=thumbnail,
        )
