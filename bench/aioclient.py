"""A lean HTTP/1.1 keep-alive load generator on raw asyncio streams (the fallback for wrk).

`python -m bench.aioclient SPEC.json` runs `connections` closed-loop connections split over
`processes` processes for `duration` seconds and prints one `BENCHJSON {...}` line with the
request count, errors and latency percentiles in microseconds (the same fields wrk's script
prints). No httpx: it costs ~2 ms of CPU per request and would be the bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sys
import time
from typing import Any
from urllib.parse import urlsplit


def _raw_requests(host: str, requests: list[dict[str, Any]]) -> list[bytes]:
    built = []
    for r in requests:
        body = (r["body"] or "").encode()
        head = [f"{r['method']} {r['path']} HTTP/1.1", f"Host: {host}",
                f"Authorization: Bearer {r['token']}"]  # fmt: skip
        if r["body"] is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        built.append(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return built


async def _connection(
    host: str, port: int, raw: list[bytes], start: int, until: float, out: dict[str, Any]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = start
    latencies: list[float] = out["latencies"]
    try:
        while time.perf_counter() < until:
            i += 1
            began = time.perf_counter()
            writer.write(raw[i % len(raw)])
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            status = int(status_line.split(b" ", 2)[1]) if status_line else 599
            if status >= 400:
                out["errors"] += 1
    finally:
        writer.close()


async def _worker_main(spec: dict[str, Any], connections: int, offset: int) -> dict[str, Any]:
    url = urlsplit(spec["base_url"])
    host, port = url.hostname or "127.0.0.1", url.port or 80
    raw = _raw_requests(f"{host}:{port}", spec["requests"])
    out: dict[str, Any] = {"latencies": [], "errors": 0}
    started = time.perf_counter()
    until = started + spec["duration"]
    await asyncio.gather(
        *(_connection(host, port, raw, (offset + c) * 7919, until, out) for c in range(connections))
    )
    out["seconds"] = time.perf_counter() - started
    return out


def _worker(args: tuple[dict[str, Any], int, int]) -> dict[str, Any]:
    spec, connections, offset = args
    return asyncio.run(_worker_main(spec, connections, offset))


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def main(path: str) -> None:
    with open(path) as handle:
        spec = json.load(handle)
    processes = max(1, min(spec["processes"], spec["connections"]))
    shares = [spec["connections"] // processes + (i < spec["connections"] % processes)
              for i in range(processes)]  # fmt: skip
    jobs = [(spec, n, sum(shares[:i])) for i, n in enumerate(shares)]
    if processes == 1:
        parts = [_worker(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            parts = pool.map(_worker, jobs)
    latencies = sorted(x for p in parts for x in p["latencies"])
    seconds = max(p["seconds"] for p in parts)
    result = {
        "requests": len(latencies),
        "duration_us": int(seconds * 1e6),
        "errors": sum(p["errors"] for p in parts),
        **{f"p{q}": int(_percentile(latencies, q) * 1e6) for q in (50, 95, 99)},
        "max": int((latencies[-1] if latencies else 0) * 1e6),
    }
    print("BENCHJSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
