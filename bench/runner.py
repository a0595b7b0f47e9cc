"""One benchmark run: for each database, seed through the checkpoints measuring pages at each,
then sends, then the raw ceiling; write the JSON and Markdown results."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
from rich.console import Console

from bench import ceiling, report, seed
from bench.checks import broken_invariants
from bench.config import Config
from bench.measure import Tokens, measure_reads, measure_sends
from bench.server import Server
from bench.target import Target, make_target, postgres_reachable
from bench.world import World

RESULTS = Path(__file__).resolve().parent / "results"
console = Console()


class BenchFailure(Exception):
    pass


async def _check(target: Target, cfg: Config, when: str) -> None:
    if not cfg.check:
        return
    broken = await broken_invariants(target)
    if broken:
        raise BenchFailure(f"invariants broken {when}: {broken}")
    say(f"invariants hold {when}")


def _ceiling(cfg: Config, target: Target, world: World) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    if target.kind == "sqlite":
        path = target.workdir / "dovecote.sqlite3"
        results = [ceiling.run_sqlite(path, world.state.threads, cfg.ceiling_seconds)
                   for _ in range(cfg.repeat)]  # fmt: skip
        runs["1"] = {**results[0].as_dict(),
                     "tps": statistics.median(r.tps for r in results)}  # fmt: skip
        return runs
    if not ceiling.pgbench_available():
        return {"error": "pgbench is not installed"}
    url = urlsplit(getattr(target, "dsn", ""))
    parts = {"host": url.hostname or "127.0.0.1", "port": str(url.port or 5432),
             "user": url.username or "postgres", "database": url.path.lstrip("/")}  # fmt: skip
    for clients in cfg.concurrency:
        try:
            results = [
                ceiling.run_pgbench(parts, world.state.threads, clients, cfg.ceiling_seconds)
                for _ in range(cfg.repeat)
            ]
        except RuntimeError as exc:  # e.g. too many connections on a shared server
            runs[str(clients)] = {"error": str(exc)[-300:]}
            continue
        runs[str(clients)] = {**results[0].as_dict(),
                              "tps": statistics.median(r.tps for r in results)}  # fmt: skip
    return runs


_T0 = time.perf_counter()


def say(text: str) -> None:
    console.print(f"[dim]{time.perf_counter() - _T0:6.1f}s[/dim] {text}")


async def bench_database(cfg: Config, kind: str) -> dict[str, Any]:
    console.rule(f"[bold]{kind}")
    target = make_target(kind)
    server: Server | None = None
    result: dict[str, Any] = {"database": kind, "reads": []}
    try:
        await target.create()
        await target.migrate()
        world = World(cfg.final)
        secret = secrets.token_urlsafe(48)
        tokens = Tokens(secret)
        for step in cfg.steps:
            await seed.grow(target, world, step)
            await _check(target, cfg, f"after seeding {step:,} messages")
            if server is None:
                server = Server(target.server_url, target.workdir / "data", secret, cfg.workers)
                server.start()
                say(f"server up on {server.base_url} (pids {server.pids()})")
            say(f"reading pages at {step:,} messages")
            result["reads"].append(measure_reads(cfg, server, world, tokens))
        assert server is not None
        say("sending")
        before = int(await target.scalar("SELECT count(*) FROM messages"))
        result["sends"] = measure_sends(cfg, server, world, tokens)
        result["sends"]["messages_stored"] = (
            int(await target.scalar("SELECT count(*) FROM messages")) - before
        )
        server.stop()
        server = None
        await _check(target, cfg, "after the sends")
        await target.close()
        say("measuring the raw ceiling")
        result["ceiling"] = _ceiling(cfg, target, world)
        return result
    finally:
        if server is not None:
            server.stop()
        await target.drop()


def _python_speed() -> dict[str, float]:
    """CPU and wall seconds of a fixed pure-Python loop: how fast (and how shared) this
    machine's cores were at the start. About 0.4 s CPU on an idle modern core."""
    started, cpu = time.perf_counter(), time.process_time()
    total = 0
    for i in range(10_000_000):
        total += i
    return {
        "loop_cpu_s": round(time.process_time() - cpu, 2),
        "loop_wall_s": round(time.perf_counter() - started, 2),
    }


def _machine() -> dict[str, Any]:
    return {
        "python_loop_10M": _python_speed(),
        "host": platform.node(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


async def run(cfg: Config) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "config": cfg.as_dict(),
        "databases": {},
        "skipped": {},
    }
    for kind in cfg.databases:
        if kind == "postgresql":
            why = await postgres_reachable()
            if why is not None:
                console.print(f"[yellow]PostgreSQL unreachable, skipped:[/yellow] {why}")
                results["skipped"][kind] = why
                continue
        results["databases"][kind] = await bench_database(cfg, kind)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def write(results: dict[str, Any], directory: Path = RESULTS) -> tuple[Path, str]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    markdown = report.markdown(results)
    path = directory / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    (directory / f"{stamp}.md").write_text(markdown)
    return path, markdown


def main(cfg: Config, output: Path = RESULTS) -> int:
    try:
        results = asyncio.run(run(cfg))
    except (BenchFailure, RuntimeError) as exc:
        console.print(f"[red]benchmark failed:[/red] {exc}")
        return 1
    path, markdown = write(results, output)
    print(markdown)
    console.print(f"results: {path} (and .md); {results['seconds']} s")
    failures = report.sanity_failures(results)
    for failure in failures:
        console.print(f"[red]sanity check failed:[/red] {failure}")
    return 1 if failures else 0
