"""`python -m bench cpu`: the server-side CPU cost of one request, in process, no network.

On a shared machine throughput figures swing with the neighbours' load; CPU time per request
barely does. This calls the ASGI app directly (no HTTP client, no sockets) for N sends, inbox
pages and thread pages and reports process CPU milliseconds per request, then profiles one kind
of them (`--profile send|inbox|thread`) with pyinstrument and prints the call tree. Use it to
check that an optimisation of the hot path really removed work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from pyinstrument import Profiler

from bench import seed
from bench.config import Config
from bench.load import Request
from bench.measure import Tokens, read_requests, send_requests
from bench.target import make_target
from bench.world import World
from dovecote.app import create_app
from dovecote.core.settings import Settings

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def call(app: ASGIApp, request: Request) -> int:
    path, _, query = request.path.partition("?")
    body = (request.body or "").encode()
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {request.token}".encode())]
    if request.body is not None:
        headers += [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]  # fmt: skip
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": request.method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": query.encode(), "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _cost(app: ASGIApp, requests: list[Request], n: int, expect: int) -> float:
    """CPU milliseconds per request over n requests (after a short warm-up)."""
    for r in requests[:20]:
        await call(app, r)
    started = time.process_time()
    for i in range(n):
        status = await call(app, requests[i % len(requests)])
        if status != expect:
            raise RuntimeError(f"{requests[i % len(requests)].path} answered {status}")
    return (time.process_time() - started) / n * 1000


async def run(args: argparse.Namespace) -> dict[str, Any]:
    target = make_target(args.db)
    try:
        await target.create()
        await target.migrate()
        world = World(Config().final.scaled(args.messages))
        await seed.grow(target, world, args.messages)
        secret = secrets.token_urlsafe(48)
        tokens = Tokens(secret)
        settings = Settings(
            data_dir=target.workdir / "data", database_url=target.server_url,
            jwt_secret=SecretStr(secret), ratelimit_enabled=False,
        )  # fmt: skip
        app = create_app(settings)
        sends = send_requests(world, tokens, 500)
        reads = read_requests(world, tokens, 200)
        async with LifespanManager(app):
            result: dict[str, Any] = {
                "send_cpu_ms": await _cost(app, sends, args.requests, 201),
                "inbox_cpu_ms": await _cost(app, reads["inbox"], args.requests, 200),
                "thread_cpu_ms": await _cost(app, reads["thread"], args.requests, 200),
            }
            profiled = {"send": (sends, 201), "inbox": (reads["inbox"], 200),
                        "thread": (reads["thread"], 200)}[args.profile]  # fmt: skip
            profiler = Profiler(interval=0.0005, async_mode="enabled")
            profiler.start()
            await _cost(app, profiled[0], args.requests, profiled[1])
            profiler.stop()
        result["profile"] = profiler.output_text(unicode=True, show_all=False)
        return result
    finally:
        await target.drop()


def main(args: argparse.Namespace) -> int:
    result = asyncio.run(run(args))
    profile = result.pop("profile")
    print(json.dumps({k: round(v, 2) for k, v in result.items()}))
    if args.output:
        Path(args.output).write_text(profile)
    print(profile)
    return 0
