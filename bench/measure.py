"""Measurements against a running server: page latencies and send throughput."""

from __future__ import annotations

import json
import random
import statistics
import time
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import psutil

from bench.config import Config
from bench.load import LoadResult, Request, run_load
from bench.server import Server
from bench.world import World
from dovecote.core.security import issue_jwt


class Tokens:
    """JWTs minted with the server's secret, one per user, as a SelfCommunity backend would."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.cache: dict[int, str] = {}

    def __call__(self, user_id: int) -> str:
        if user_id not in self.cache:
            self.cache[user_id] = issue_jwt(self.secret, user_id, lifetime=timedelta(hours=12))
        return self.cache[user_id]


def probe(server: Server, request: Request, expect: int) -> None:
    """One request by hand: fail loudly, with the answer, if the endpoint misbehaves."""
    data = request.body.encode() if request.body is not None else None
    sent = urllib.request.Request(
        server.base_url + request.path, data=data, method=request.method,
        headers={"Authorization": f"Bearer {request.token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(sent, timeout=30) as answer:
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    if status != expect:
        raise RuntimeError(
            f"{request.method} {request.path} answered {status}, not {expect}: {body[:500]!r}\n"
            f"server log:\n{server.log_tail(60)}"
        )


def _median_result(results: list[LoadResult]) -> dict[str, Any]:
    """Each figure's median over the repeats, plus every repeat's rate."""
    merged: dict[str, Any] = results[0].as_dict()
    for key in ("rate", "p50_ms", "p95_ms", "p99_ms", "max_ms", "loadgen_cpu_cores"):
        merged[key] = round(statistics.median(getattr(r, key) for r in results), 3)
    merged["requests"] = sum(r.requests for r in results)
    merged["errors"] = sum(r.errors for r in results)
    merged["rates"] = [r.rate for r in results]
    kinds = [r.error_kinds for r in results if r.error_kinds]
    if kinds:
        merged["error_kinds"] = {k: sum(x[k] for x in kinds) for k in kinds[0]}
    return merged


class CpuMeter:
    """CPU cores used by the server, the database server and the whole machine over a span."""

    def __init__(self, server: Server) -> None:
        self.server = server

    @staticmethod
    def _postgres_seconds() -> dict[int, float]:
        seconds = {}
        for p in psutil.process_iter(["name", "cpu_times"]):
            times = p.info["cpu_times"]
            if p.info["name"] == "postgres" and times is not None:
                seconds[p.pid] = times.user + times.system
        return seconds

    def __enter__(self) -> CpuMeter:
        self.started = time.perf_counter()
        self.server_cpu = self.server.cpu_seconds()
        self.pg_cpu = self._postgres_seconds()
        self.machine = psutil.cpu_times()
        return self

    def __exit__(self, *_: object) -> None:
        wall = time.perf_counter() - self.started
        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - (sum(self.machine) - self.machine.idle)
        # Backends that exited during the span took their CPU time with them: count the ones
        # still there (new ones in full), so the figure is a lower bound, never negative.
        pg = sum(t - self.pg_cpu.get(pid, 0.0) for pid, t in self._postgres_seconds().items())
        self.figures = {
            "server_cpu_cores": round((self.server.cpu_seconds() - self.server_cpu) / wall, 2),
            "postgres_cpu_cores": round(max(pg, 0.0) / wall, 2),
            "machine_busy_cores": round(busy / wall, 2),
        }


def repeated(
    cfg: Config, server: Server, requests: list[Request], connections: int, seconds: float
) -> dict[str, Any]:
    runs = []
    meters = []
    for _ in range(cfg.repeat):
        with CpuMeter(server) as meter:
            runs.append(run_load(server.base_url, requests, connections, seconds, cfg.loadgen))
        meters.append(meter.figures)
    result = _median_result(runs)
    for key in meters[0]:
        result[key] = round(statistics.median(m[key] for m in meters), 2)
    return result


# --- reads -------------------------------------------------------------------------------------


def read_requests(world: World, tokens: Tokens, samples: int) -> dict[str, list[Request]]:
    """Inbox and thread pages of typical members and of the busiest ones."""
    state, rng = world.state, random.Random(11)
    users = [u for u in range(1, state.users + 1) if state.degree[u]]
    threads = list(range(state.threads))
    busiest_users = sorted(users, key=lambda u: -state.degree[u])[:5]
    busiest_threads = sorted(threads, key=lambda t: -state.count[t])[:5]

    def inbox(u: int) -> Request:
        return Request("GET", "/api/v2/pm/", tokens(u))

    def thread(t: int) -> Request:
        return Request("GET", f"/api/v2/pm/?thread={t + 1}", tokens(world.thread_low[t]))

    return {
        "inbox": [inbox(u) for u in rng.sample(users, min(samples, len(users)))],
        "inbox_busiest": [inbox(u) for u in busiest_users],
        "thread": [thread(t) for t in rng.sample(threads, min(samples, len(threads)))],
        "thread_busiest": [thread(t) for t in busiest_threads],
    }


def measure_reads(cfg: Config, server: Server, world: World, tokens: Tokens) -> dict[str, Any]:
    state = world.state
    figures: dict[str, Any] = {
        "messages": state.messages,
        "threads": state.threads,
        "users": state.users,
        "largest_inbox": max(state.degree),
        "longest_thread": max(state.count),
    }
    for name, requests in read_requests(world, tokens, cfg.read_samples).items():
        for request in requests:  # checks each answer; the first thread read marks it seen
            probe(server, request, 200)
        figures[name] = repeated(cfg, server, requests, 1, cfg.read_seconds)
    return figures


# --- sends -------------------------------------------------------------------------------------


def send_requests(world: World, tokens: Tokens, pairs: int) -> list[Request]:
    """Sends between people who already talk (threads exist), spread over the community."""
    state, rng = world.state, random.Random(5)
    requests = []
    for _ in range(pairs):
        t = rng.randrange(state.threads)
        low, high = world.thread_low[t], world.thread_high[t]
        sender, recipient = (low, high) if rng.random() < 0.5 else (high, low)
        body = json.dumps({"recipients": [recipient], "message": rng.choice(world.bodies)})
        requests.append(Request("POST", "/api/v2/pm/", tokens(sender), body))
    return requests


def measure_sends(cfg: Config, server: Server, world: World, tokens: Tokens) -> dict[str, Any]:
    """Throughput and latency at each concurrency; `sends_answered_201` counts every send that
    succeeded (warm-up included) so the caller can compare it with the rows stored."""
    requests = send_requests(world, tokens, cfg.send_pairs)
    probe(server, requests[0], 201)
    warm = run_load(server.base_url, requests, 16, min(3.0, cfg.send_seconds), cfg.loadgen)
    answered = 1 + warm.requests - warm.errors
    by_concurrency = {}
    for connections in cfg.concurrency:
        result = repeated(cfg, server, requests, connections, cfg.send_seconds)
        answered += result["requests"] - result["errors"]
        by_concurrency[str(connections)] = result
    return {"by_concurrency": by_concurrency, "sends_answered_201": answered}
