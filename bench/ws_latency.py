"""Live delivery latency and the memory cost of idle sockets (not a test: figures to read).

    PYTHONPATH=src python bench/ws_latency.py [--sockets 1000] [--messages 400]
        [--concurrency 4] [--database-url postgresql+asyncpg://...] [--redis-url redis://...]

Starts one `uvicorn dovecote.app:create_app` server process (uvloop + httptools, as
`dovecote serve` does) on a fresh database, opens SOCKETS sockets for as many users (each
beating every 5 s like the SelfCommunity WSClient), measures the server's resident memory
before and after, then sends MESSAGES messages (CONCURRENCY at a time, each to a random
socket holder) and times each from the send request and from its 201 to the frame's arrival.
A negative "201 -> frame" means the frame overtook the HTTP answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from dovecote.core import migrate, security
from dovecote.core.db import create_database, standalone_unit
from dovecote.core.settings import Settings
from dovecote.users import service as users_service

HEARTBEAT = "--1a61c1de89b75ddfbb684b8d224ee3ae--"
SECRET = "bench-secret-" + "b" * 40


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def create_users(settings: Settings, sockets: int, senders: int) -> list[tuple[int, str]]:
    """`senders` staff users (who may write anyone) first, then one user per socket."""
    database = create_database(settings)
    created: list[tuple[int, str]] = []
    try:
        async with standalone_unit(database) as uow:
            ctx = users_service.Context(uow, settings)
            for i in range(senders + sockets):
                role = "moderator" if i < senders else None
                user = await users_service.create_user(ctx, username=f"bench{i}", role=role)
                token = security.issue_jwt(SECRET.encode(), user.id, lifetime=timedelta(hours=6))
                created.append((user.id, token))
    finally:
        await database.dispose()
    return created


def start_server(env: dict[str, str], port: int, ws: str, deflate: bool) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", "dovecote.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--log-level", "warning", "--backlog", "4096", "--ws", ws,
        "--ws-per-message-deflate", str(deflate).lower(),
    ]  # fmt: skip
    return subprocess.Popen(command, env=env)


async def wait_ready(base: str) -> None:
    async with httpx.AsyncClient() as http, asyncio.timeout(60):
        while True:
            try:
                if (await http.get(f"{base}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


class Fleet:
    """The open sockets; records when each message's frame arrives."""

    def __init__(self) -> None:
        self.sockets: list[ClientConnection] = []
        self.arrivals: dict[int, float] = {}
        self.arrived = asyncio.Event()
        self.expected = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self, url: str, tokens: list[str], batch: int = 100) -> None:
        for start in range(0, len(tokens), batch):
            opened = await asyncio.gather(
                *(self._open(url, token) for token in tokens[start : start + batch])
            )
            self.sockets.extend(opened)

    async def _open(self, url: str, token: str) -> ClientConnection:
        ws = await connect(
            url, subprotocols=[Subprotocol(f"__{token}")], ping_interval=None, open_timeout=60
        )
        self._tasks.append(asyncio.create_task(self._listen(ws)))
        self._tasks.append(asyncio.create_task(self._beat(ws)))
        return ws

    async def _listen(self, ws: ClientConnection) -> None:
        async for raw in ws:
            if raw == HEARTBEAT:
                continue
            frame: dict[str, Any] = json.loads(raw)
            message_id = frame["data"]["notification_obj"]["message"]["id"]
            self.arrivals.setdefault(message_id, time.perf_counter())
            if len(self.arrivals) >= self.expected:
                self.arrived.set()

    async def _beat(self, ws: ClientConnection) -> None:
        await asyncio.sleep(random.uniform(0, 5))
        while True:
            await ws.send(HEARTBEAT)
            await asyncio.sleep(5)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


async def send_all(
    base: str,
    senders: list[tuple[int, str]],
    recipients: list[int],
    messages: int,
    concurrency: int,
) -> dict[int, tuple[float, float]]:
    sent: dict[int, tuple[float, float]] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(messages):
        queue.put_nowait(i)

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            _, token = senders[i % len(senders)]
            body = {"recipients": [random.choice(recipients)], "message": f"bench {i}"}
            started = time.perf_counter()
            response = await http.post(
                "/api/v2/pm/", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            answered = time.perf_counter()
            if response.status_code != 201:
                raise RuntimeError(f"send failed: {response.status_code} {response.text}")
            sent[response.json()["id"]] = (started, answered)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return sent


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms   max {ordered[-1] * 1000:7.2f} ms"


async def main(args: argparse.Namespace) -> None:
    raise_file_limit()
    data_dir = Path(tempfile.mkdtemp(prefix="dovecote-bench-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{data_dir / 'bench.sqlite3'}"
    settings = Settings(
        _env_file=None,
        data_dir=data_dir,
        database_url=database_url,
        jwt_secret=SECRET,
    )
    await asyncio.to_thread(migrate.upgrade, database_url)
    users = await create_users(settings, args.sockets, args.senders)
    senders, holders = users[: args.senders], users[args.senders :]

    port = free_port()
    env = {
        **os.environ,
        "DOVECOTE_DATA_DIR": str(data_dir),
        "DOVECOTE_DATABASE_URL": database_url,
        "DOVECOTE_JWT_SECRET": SECRET,
        "DOVECOTE_RATELIMIT_ENABLED": "false",
        "DOVECOTE_LIVE_CHANNEL": f"dovecote:bench:{secrets.token_hex(4)}",
    }
    if args.redis_url:
        env["DOVECOTE_REDIS_URL"] = args.redis_url
    server = start_server(env, port, args.ws, args.deflate)
    fleet = Fleet()
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_ready(base)
        process = psutil.Process(server.pid)
        await asyncio.sleep(1)
        rss_before = process.memory_info().rss
        opened_at = time.perf_counter()
        await fleet.open(f"ws://127.0.0.1:{port}/ws/notify?subscribe-user", [t for _, t in holders])
        opening = time.perf_counter() - opened_at
        await asyncio.sleep(3)  # let allocations settle
        rss_after = process.memory_info().rss
        idle_cpu, idle_started = cpu_seconds(process), time.perf_counter()
        await asyncio.sleep(10)  # idle sockets: only heartbeats
        idle_cpu = (cpu_seconds(process) - idle_cpu) / (time.perf_counter() - idle_started)
        sending_cpu = cpu_seconds(process)

        fleet.expected = args.messages
        sent = await send_all(
            base, senders, [u for u, _ in holders], args.messages, args.concurrency
        )
        async with asyncio.timeout(60):
            await fleet.arrived.wait()

        sending_cpu = cpu_seconds(process) - sending_cpu
        from_request = [fleet.arrivals[m] - s for m, (s, _) in sent.items()]
        from_201 = [fleet.arrivals[m] - a for m, (_, a) in sent.items()]
        answers = [a - s for s, a in sent.values()]
        per_socket = (rss_after - rss_before) / len(fleet.sockets)
        print(
            f"\nserver: 1 process, {'PostgreSQL' if args.database_url else 'SQLite'}, "
            f"broker {'Redis' if args.redis_url else 'in-process'}, uvicorn --ws {args.ws}, "
            f"permessage-deflate {'on' if args.deflate else 'off'}; "
            f"{os.cpu_count()} cores"
        )
        print(
            f"sockets open: {len(fleet.sockets)} (opened in {opening:.1f} s), "
            f"each beating every 5 s"
        )
        print(
            f"server RSS: {rss_before / 2**20:.1f} MiB idle -> {rss_after / 2**20:.1f} MiB "
            f"with the sockets = {per_socket / 1024:.1f} KiB per idle socket"
        )
        print(f"{args.messages} sends, concurrency {args.concurrency}:")
        print(f"  send request -> 201      {percentiles(answers)}")
        print(f"  send request -> frame    {percentiles(from_request)}")
        print(f"  201 -> frame             {percentiles(from_201)}")
        overtook = sum(1 for v in from_201 if v < 0)
        print(f"  frames that overtook their 201: {overtook} of {len(from_201)}")
        print(
            f"server CPU: {idle_cpu * 100:.1f} % of a core for the idle sockets' heartbeats; "
            f"{sending_cpu / args.messages * 1000:.2f} ms per send including its frame"
        )
    finally:
        await fleet.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--ws", default="auto", help="uvicorn's WebSocket implementation")
    parser.add_argument(
        "--deflate",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="permessage-deflate (off by default, as in `dovecote serve`)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
