"""Log lines in one process: request ids, the access line, the formats and the redaction net.
(A real `dovecote serve` whose whole output is searched for secrets: test_observability_serve.)"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dovecote.core.settings import Settings
from dovecote.observability import logs
from tests.conftest import World


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


def _handler(formatter: logging.Formatter) -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(logs.RequestContextFilter())
    handler.addFilter(logs.RedactingFilter())
    return handler, stream


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Every record at DEBUG and above, through the JSON formatter and both filters."""
    handler, stream = _handler(logs.JsonFormatter())
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in [*logs.QUIET, ""]}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name, floor in logs.QUIET.items():  # as `dovecote serve` holds them
        logging.getLogger(name).setLevel(floor)
    try:
        yield Captured(stream)
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name or None).setLevel(level)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b", True),
        ("req_42.a:b", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("<script>", False),
        ("", False),
    ],
)
async def test_request_id_is_echoed_when_plain_else_made(
    client: httpx.AsyncClient, sent: str, kept: bool
) -> None:
    answer = await client.get("/healthz", headers={"X-Request-ID": sent})
    echoed = answer.headers["x-request-id"]
    if kept:
        assert echoed == sent
    else:
        assert echoed != sent and len(echoed) == 32 and int(echoed, 16) >= 0


async def test_each_request_gets_its_own_id(client: httpx.AsyncClient) -> None:
    ids = {(await client.get("/healthz")).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


async def test_access_line_names_the_route_never_the_query(
    client: httpx.AsyncClient, world: World, captured: Captured
) -> None:
    anna = await world.user("anna")
    answer = await client.get(
        "/api/v2/pm/?thread=12345&access_token=query-secret-123",
        headers={**anna.auth, "X-Request-ID": "req-access-1"},
    )
    assert answer.status_code == 404
    lines = [r for r in captured.records() if r["logger"] == "dovecote.access"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "req-access-1"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/api/v2/pm/", 404)
    assert isinstance(line["duration_ms"], float)
    assert line["message"].startswith("GET /api/v2/pm/ 404 ")
    text = "\n".join(captured.lines())
    assert "query-secret-123" not in text and "12345" not in text and anna.token not in text


async def test_a_server_error_keeps_its_request_id(
    app: FastAPI, client: httpx.AsyncClient, captured: Captured
) -> None:
    async def boom() -> None:
        raise RuntimeError("failed with password=hunter2-secret and Bearer abc.def.ghi")

    app.add_api_route("/boom-for-test", boom)
    answer = await client.get("/boom-for-test", headers={"X-Request-ID": "req-boom-1"})
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "req-boom-1"
    mine = [r for r in captured.records() if r.get("request_id") == "req-boom-1"]
    errors = [r for r in mine if r["level"] == "ERROR"]
    assert errors and "RuntimeError" in errors[0]["exception"]
    assert any(r["logger"] == "dovecote.access" and r["status"] == 500 for r in mine)
    text = "\n".join(captured.lines())
    assert "hunter2-secret" not in text and "abc.def.ghi" not in text
    assert "password=[redacted]" in text


def _record(name: str, msg: str, *args: Any, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_uvicorn_access_lines_lose_their_signed_links() -> None:
    """uvicorn's own access format, should anyone turn it back on: path with query."""
    formatter = logs.JsonFormatter()
    record = _record(
        "uvicorn.access",
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        "/api/v2/pm/files/0b1c/?exp=1764950400&sig=SIGNATURE-abc_123",
        "1.1",
        200,
        color_message="GET /api/v2/pm/files/0b1c/?exp=1764950400&sig=SIGNATURE-abc_123",
    )
    assert logs.RedactingFilter().filter(record)
    line = formatter.format(record)
    assert "SIGNATURE-abc_123" not in line and "sig=[redacted]" in line
    assert "color_message" not in json.loads(line)


@pytest.mark.parametrize(
    "leaky",
    [
        "Authorization: Bearer opaque-token-value-123",
        "headers [(b'authorization', b'Bearer opaque-token-value-123')]",
        "grant_type=password&username=anna&password=opaque-token-value-123",
        "client_secret=opaque-token-value-123&refresh_token=opaque-token-value-123",
        '{"password": "opaque-token-value-123"}',
        "{'access_token': 'opaque-token-value-123'}",
        "subprotocols ['__opaque-token-value-123']",
        "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.opaque-token-value-123",
        "[SQL: INSERT INTO messages]\n[parameters: ('opaque-token-value-123', 1)]",
        "GET /x?X-Amz-Signature=opaque-token-value-123&X-Amz-Credential=opaque-token-value-123",
    ],
)
def test_redaction(leaky: str) -> None:
    assert "opaque-token-value-123" not in logs.scrub(leaky)


def test_redaction_reaches_tracebacks_and_extras() -> None:
    try:
        raise ValueError("token=opaque-token-value-123")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, None)
        import sys

        record.exc_info = sys.exc_info()
    record.detail = "password=opaque-token-value-123"
    logs.RedactingFilter().filter(record)
    for formatter in (logs.JsonFormatter(), logs.TextFormatter()):
        assert "opaque-token-value-123" not in formatter.format(record)


def test_text_lines_are_readable() -> None:
    token = logs.request_id.set("req-text-1")
    try:
        handler, stream = _handler(logs.TextFormatter())
        record = _record("dovecote.access", "%s %s %s %.1fms", "GET", "/healthz", 200, 1.25)
        handler.handle(record)
    finally:
        logs.request_id.reset(token)
    line = stream.getvalue().strip()
    assert line.endswith(" INFO dovecote.access [req-text-1] GET /healthz 200 1.2ms")


def test_configuration_holds_payload_loggers_back(settings: Settings) -> None:
    debug = settings.model_copy(update={"log_level": "debug", "log_format": "json"})
    config = logs.config(debug)
    assert config["root"]["level"] == logging.DEBUG
    assert config["loggers"]["sqlalchemy"]["level"] == logging.WARNING
    assert config["loggers"]["websockets"]["level"] == logging.INFO
    assert config["formatters"]["default"]["()"].endswith("JsonFormatter")
