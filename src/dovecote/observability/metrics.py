"""Prometheus metrics, counted in every server process and reported together.

`dovecote serve` gives its processes a fresh PROMETHEUS_MULTIPROC_DIR (observability.serving),
so prometheus_client keeps each process's values in memory-mapped files there and `/metrics`
adds up every process's files, whichever process answers. Without that variable (tests, an app
served by hand) the values live in this process only.

prometheus_client chooses between the two when it is first imported, by that variable: this
module therefore imports it only when the first value is counted (`instruments()`), never at
import time, so `dovecote serve` can set the directory first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram
    from prometheus_client.registry import CollectorRegistry

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Instruments:
    requests: Counter
    latency: Histogram
    sends: Counter
    sockets_open: Gauge
    frames_sent: Counter
    pool_checked_out: Gauge
    pool_size: Gauge
    rate_limited: Counter


@cache
def instruments() -> Instruments:
    from prometheus_client import Counter, Gauge, Histogram

    return Instruments(
        requests=Counter(
            "dovecote_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
        ),
        latency=Histogram(
            "dovecote_http_request_duration_seconds",
            "Time from the request's arrival to the end of its answer, by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
        ),
        sends=Counter(
            "dovecote_sends",
            "Message sends (POST /api/v2/pm/): created, refused (4xx, by error code) or "
            "error (5xx, by error code).",
            ["outcome", "code"],
        ),
        sockets_open=Gauge(
            "dovecote_websockets_open",
            "Live sockets (/ws/notify) open now.",
            multiprocess_mode="livesum",
        ),
        frames_sent=Counter(
            "dovecote_websocket_frames_sent",
            "Frames sent on live sockets: events and heartbeat echoes.",
            ["kind"],
        ),
        pool_checked_out=Gauge(
            "dovecote_db_pool_checked_out",
            "Database connections in use now, by pool.",
            ["pool"],
            multiprocess_mode="livesum",
        ),
        pool_size=Gauge(
            "dovecote_db_pool_size",
            "Database connections a pool may hold at most (its size plus overflow), by pool.",
            ["pool"],
            multiprocess_mode="livesum",
        ),
        rate_limited=Counter(
            "dovecote_rate_limited",
            "Requests refused by a rate limit, by limit (category:user or category:ip).",
            ["limit"],
        ),
    )


def rate_limited(limit: str) -> None:
    instruments().rate_limited.labels(limit).inc()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def registry() -> CollectorRegistry:
    """What /metrics reports: every process's files in multiprocess mode, else this process."""
    instruments()  # so that the families exist (at zero) before anything was counted
    if multiprocess_dir():
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        combined = CollectorRegistry()
        MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
        return combined
    from prometheus_client import REGISTRY

    return REGISTRY


def exposition() -> tuple[bytes, str]:
    """The text format of every metric, with its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry()), CONTENT_TYPE_LATEST
