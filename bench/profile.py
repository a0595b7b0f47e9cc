"""`python -m bench profile`: where a server worker's CPU goes during sends.

Seeds a community, starts the server, drives sends with wrk and samples every worker with
py-spy (`pip install py-spy`; needs ptrace rights, e.g. root). The samples are written as
collapsed stacks (flame-graph input) and summarised two ways: by the library that was running
(self time) and by the step of the request that was under way (inclusive time).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

from bench import seed
from bench.config import Config
from bench.load import run_load
from bench.measure import Tokens, send_requests
from bench.runner import RESULTS
from bench.server import Server
from bench.target import make_target
from bench.world import World

# (label, substring of a frame): the first match from the leaf up names the library.
LIBRARIES = [
    ("asyncpg driver", "asyncpg/"),
    ("aiosqlite / sqlite3", "aiosqlite/"),
    ("aiosqlite / sqlite3", "sqlite3/"),
    ("SQLAlchemy: SQL compilation", "sqlalchemy/sql/"),
    ("SQLAlchemy: ORM session", "sqlalchemy/orm/"),
    ("SQLAlchemy: engine/pool/result", "sqlalchemy/"),
    ("pydantic", "pydantic"),
    ("FastAPI", "fastapi/"),
    ("Starlette", "starlette/"),
    ("uvicorn + httptools", "uvicorn/"),
    ("uvicorn + httptools", "httptools"),
    ("logging (access log)", "logging/"),
    ("PyJWT", "jwt/"),
    ("json / orjson", "json/"),
    ("Dovecote code", "dovecote/"),
    ("asyncio / uvloop", "asyncio/"),
    ("asyncio / uvloop", "uvloop"),
]

# (label, function in a frame), innermost first: the first that matches names the step of the
# request that was under way. A name matches a frame's function or, for a class, its methods.
STEPS = [
    ("auth: decode JWT", "decode_jwt"),
    ("auth: principal query", "principal_by_user_id"),
    ("send: recipient rules query", "recipient_facts"),
    ("send: find thread query", "direct_threads"),
    ("send: INSERT message", "insert_message"),
    ("send: INSERT thread_messages", "list_in_threads"),
    ("send: UPSERT thread_members", "advance_members"),
    ("send: UPDATE users + INSERT events", "append_events"),
    ("send: load users for the answer", "get_users"),
    ("send: shape the answer", "message_out"),
    ("send: rest of the service", "send_message"),
    ("body: parse JSON", "read_body"),
    ("auth: rest", "current_user"),
    ("commit", "UnitOfWork.commit"),
    ("sync dependencies sent to the threadpool", "run_in_threadpool"),
    ("threadpool worker threads", "WorkerThread"),
    ("response: serialise", "serialize_response"),
    ("FastAPI dependency resolution", "solve_dependencies"),
    ("access log", "Logger"),
    ("route wrapper (rollback, close)", "CommittingRoute"),
    ("HTTP parsing (httptools)", "HttpToolsProtocol"),
    ("ASGI middleware and response writing", "RequestResponseCycle"),
]


# Leaf frames of threads that are waiting, not running (py-spy cannot always tell).
WAITING = ("Condition.wait", "Queue.get (", "_recv_bytes", "select (", "poll (")


def _function(frame: str) -> str:
    return frame.split(" (", 1)[0]


def summarise(collapsed: list[str]) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    libraries: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in collapsed:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if any(mark in frames[-1] for mark in WAITING):
            continue  # a thread parked on a lock or queue is not using the CPU
        total += count
        leaf = next(
            (label for f in reversed(frames) for label, mark in LIBRARIES if mark in f),
            "other (interpreter, C)",
        )
        libraries[leaf] += count
        leaves[frames[-1]] += count
        names = [_function(f) for f in frames]
        step = next(
            (label for label, fn in STEPS if any(n == fn or n.startswith(fn + ".") for n in names)),
            "event loop and other",
        )
        steps[step] += count
    return libraries, steps, leaves, total


def report(libraries: Counter[str], steps: Counter[str], leaves: Counter[str], total: int) -> str:
    lines = [f"{total} samples (non-idle) over the workers", "",
             "| library (self time) | share |", "|---|---:|"]  # fmt: skip
    lines += [f"| {k} | {v / total:.1%} |" for k, v in libraries.most_common()]
    lines += ["", "| step of the request (inclusive) | share |", "|---|---:|"]
    lines += [f"| {k} | {v / total:.1%} |" for k, v in steps.most_common()]
    lines += ["", "| hottest frames (self time) | share |", "|---|---:|"]
    lines += [f"| `{k}` | {v / total:.1%} |" for k, v in leaves.most_common(20)]
    return "\n".join(lines) + "\n"


def _py_spy() -> str:
    found = shutil.which("py-spy") or Path(sys.executable).with_name("py-spy")
    return str(found)


def _record(pid: int, seconds: int, output: Path) -> subprocess.Popen[bytes]:
    command = [_py_spy(), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200",
               "--format", "raw", "--output", str(output)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def _seed(kind: str, messages: int) -> tuple[object, World]:
    target = make_target(kind)
    await target.create()
    try:
        await target.migrate()
        world = World(Config().final.scaled(messages))
        await seed.grow(target, world, messages)
        await target.close()
    except BaseException:
        await target.drop()
        raise
    return target, world


def main(args: argparse.Namespace) -> int:
    if not Path(_py_spy()).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 1
    target, world = asyncio.run(_seed(args.db, args.messages))
    out = args.output or RESULTS / f"profile-{args.db}"
    out.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    server = Server(target.server_url, Path(tempfile.mkdtemp()), secret)  # type: ignore[attr-defined]
    try:
        server.start()
        requests = send_requests(world, Tokens(secret), 2000)
        run_load(server.base_url, requests, args.connections, 3)  # warm up
        loader = threading.Thread(
            target=lambda: print(run_load(server.base_url, requests, args.connections,
                                          args.seconds + 4)))  # fmt: skip
        loader.start()
        files = [out / f"worker-{pid}.txt" for pid in server.worker_pids()]
        spies = [
            _record(pid, args.seconds, f)
            for pid, f in zip(server.worker_pids(), files, strict=True)
        ]
        for spy in spies:
            _, err = spy.communicate(timeout=args.seconds + 60)
            if spy.returncode != 0:
                print(err.decode(errors="replace")[-1000:], file=sys.stderr)
        loader.join()
    finally:
        server.stop()
        asyncio.run(target.drop())  # type: ignore[attr-defined]
    collapsed = [line for f in files if f.exists() for line in f.read_text().splitlines()]
    text = report(*summarise(collapsed))
    (out / "summary.md").write_text(text)
    print(text)
    print(f"collapsed stacks in {out} (open with speedscope or flamegraph.pl)")
    return 0
