"""Log lines: one JSON object per line (`DOVECOTE_LOG_FORMAT=json`) or readable text, each
carrying the request id of the request it was written for, and scrubbed of credentials.

`config()` is a `logging.config.dictConfig` dictionary used twice by `dovecote serve`: in the
serving process itself and, through uvicorn's `log_config`, in every worker it spawns, so the
app's, uvicorn's and the libraries' loggers all go through one handler, one formatter and the
two filters below.

What never reaches a log: the redaction filter is a safety net, not the plan. The plan is that
no code logs a token, password, secret, signed link or message body, and that the libraries
which dump payloads at DEBUG (SQL parameters, WebSocket frames, driver calls) are held at a
level where they do not (`QUIET`), whatever `DOVECOTE_LOG_LEVEL` says.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

from dovecote.core.settings import Settings

request_id: ContextVar[str | None] = ContextVar("dovecote_request_id", default=None)

# Loggers that print payloads (SQL parameters, frames, driver calls, HTTP bodies) at DEBUG or
# INFO, with the lowest level they are allowed to log at.
QUIET = {
    "sqlalchemy": logging.WARNING,  # INFO is every statement with its parameters
    "aiosqlite": logging.INFO,  # DEBUG is every call with its arguments
    "asyncpg": logging.INFO,
    "websockets": logging.INFO,  # DEBUG is every frame and handshake header
    "multipart": logging.INFO,
    "python_multipart": logging.INFO,
    "botocore": logging.INFO,  # DEBUG is signed requests
    "aiobotocore": logging.INFO,
    "boto3": logging.INFO,
    "urllib3": logging.INFO,
    "httpcore": logging.INFO,
    "httpx": logging.WARNING,  # INFO is every request's URL, query string included
    "hpack": logging.INFO,
    "limits": logging.INFO,
    "uvicorn.asgi": logging.INFO,  # TRACE is every ASGI message
}

# --- redaction ------------------------------------------------------------------------------

_SECRET_NAME = (
    r"(?:[\w-]*[_-])?(?:token|password|passwd|secret|signature|sig|credential|api[_-]?key)"
)
_SCRUBS: list[tuple[re.Pattern[str], str]] = [
    # Authorization headers: "Authorization: ...", (b'authorization', b'...')
    (
        re.compile(
            r"(?i)(authorization[\"']?\s*[:,=]\s*(?:b?[\"'])?(?:(?:bearer|basic)\s+)?)[^\"'\s]+"
        ),
        r"\1[redacted]",
    ),
    # bearer and basic credentials anywhere else
    (re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)[A-Za-z0-9._~+/=-]+"), r"\1\2[redacted]"),
    # JWTs anywhere (header.payload.signature, base64url)
    (re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*"), "[redacted]"),
    # name=value in query strings, forms and key=value text
    (re.compile(rf"(?i)(?<![\w-])({_SECRET_NAME})=[^&\s\"',;<>)\]]+"), r"\1=[redacted]"),
    # "name": "value" and 'name': 'value' in JSON and reprs
    (
        re.compile(rf"(?i)([\"']{_SECRET_NAME}[\"']\s*:\s*(?:b(?=[\"']))?)([\"'])(?:(?!\2).)*\2"),
        r"\1\2[redacted]\2",
    ),
    # the live socket's `__<token>` subprotocol
    (re.compile(r"(?<![\w])__[A-Za-z0-9._~+/=-]{16,}"), "__[redacted]"),
    # SQLAlchemy error messages quote the statement's parameters (message text, digests)
    (re.compile(r"\[parameters: [^\n]*"), "[parameters: [redacted]]"),
]


# Something every pattern above needs: most lines (access lines among them) have none of these
# and skip the patterns (they were most of a request's logging cost).
_MAYBE_SECRET = re.compile(
    r"(?i)authorization|bearer|basic|eyj|token|passw|secret|sig|credential|key|__|\[parameters"
)


def scrub(text: str) -> str:
    if not _MAYBE_SECRET.search(text):
        return text
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    return text


_STANDARD = frozenset(
    set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
    | {"message", "asctime", "request_id", "color_message", "taskName"}
)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k[0] != "_"}


class RedactingFilter(logging.Filter):
    """Scrubs the finished message, the traceback and string extras of every record a handler
    writes. Attached to handlers (a logger's filters do not see its children's records)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging's own error report
            return True
        record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        for key, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, key, scrub(value))
        record.__dict__.pop("color_message", None)  # uvicorn's second, unscrubbed copy
        return True


class RequestContextFilter(logging.Filter):
    """Adds `request_id` (of the request being served, if any) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        return True


# --- formats --------------------------------------------------------------------------------


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, the record's extra
    fields (the access log's method, route, status, duration_ms...) and any exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            entry["request_id"] = rid
        entry.update(_extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """`2026-12-05T09:30:00.123Z INFO dovecote.access [3f2a...] POST /api/v2/pm/ 201 4.1ms`"""

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        line = f"{_timestamp(record)} {record.levelname} {record.name} "
        line += f"[{rid}] " if rid else ""
        line += record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


# --- configuration --------------------------------------------------------------------------


def config(settings: Settings) -> dict[str, Any]:
    """The dictConfig for a serving process (picklable: uvicorn sends it to its workers)."""
    level = logging.getLevelName(settings.log_level.upper())
    formatter = {"()": f"{__name__}.{'Json' if settings.log_format == 'json' else 'Text'}Formatter"}
    own = {"level": level, "handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": f"{__name__}.RequestContextFilter"},
            "redact": {"()": f"{__name__}.RedactingFilter"},
        },
        # "default" and "access": the names uvicorn writes `use_colors` into when asked to
        "formatters": {"default": formatter, "access": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["context", "redact"],
            }
        },
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            "uvicorn": own,
            "uvicorn.error": own,
            "uvicorn.access": own,
            **{name: {"level": max(level, floor)} for name, floor in QUIET.items()},
        },
    }


def configure(settings: Settings) -> None:
    import logging.config

    logging.config.dictConfig(config(settings))
