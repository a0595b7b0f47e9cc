"""Drive HTTP load from a separate process and report its own CPU use.

wrk (C, `apt-get install -y wrk`) with a Lua script that cycles through prebuilt requests is
preferred; without it, `bench.aioclient` (raw asyncio streams, a few processes) stands in.
The CPU the load generator used is read from the kernel's accounting of the child (wait4), so a
load generator that becomes the bottleneck shows up in the results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MARK = "BENCHJSON "


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    token: str
    body: str | None = None


@dataclass
class LoadResult:
    tool: str
    connections: int
    duration_s: float
    requests: int
    errors: int
    rate: float  # successful requests per second
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    loadgen_cpu_cores: float  # CPU seconds used by the load generator per wall second
    error_kinds: dict[str, int] | None = None  # wrk: connect/read/write/status (>= 400)/timeout

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


LUA_TAIL = """
local built = {}
local i = 0
local next_thread = 0

setup = function(thread)
  thread:set("offset", next_thread)
  next_thread = next_thread + 1
end

init = function(args)
  for k, r in ipairs(reqs) do
    local headers = {["Authorization"] = "Bearer " .. r[3]}
    if r[4] then headers["Content-Type"] = "application/json" end
    built[k] = wrk.format(r[1], r[2], headers, r[4])
  end
  i = (offset or 0) * 7919
end

request = function()
  i = i + 1
  return built[(i % #built) + 1]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"errors":%d,'
    .. '"error_kinds":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
    .. '"p50":%d,"p95":%d,"p99":%d,"max":%d}\\n',
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def _lua_script(requests: list[Request]) -> str:
    lines = ["reqs = {"]
    for r in requests:
        body = _lua_string(r.body) if r.body is not None else "nil"
        lines.append(f"  {{{_lua_string(r.method)}, {_lua_string(r.path)}, "
                     f"{_lua_string(r.token)}, {body}}},")  # fmt: skip
    lines.append("}")
    return "\n".join(lines) + LUA_TAIL


def _run_child(command: list[str]) -> tuple[str, float, float]:
    """Run a load generator; return its stdout, wall seconds and CPU seconds (its children's
    included)."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed ({process.returncode}):\n{text[-2000:]}")
    return text, wall, usage.ru_utime + usage.ru_stime


def _parse(text: str) -> list[dict[str, Any]]:
    found = [json.loads(line[len(MARK) :]) for line in text.splitlines() if line.startswith(MARK)]
    if not found:
        raise RuntimeError(f"no result from the load generator:\n{text[-2000:]}")
    return found


def run_wrk(
    base_url: str, requests: list[Request], connections: int, duration: float
) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua_script(requests))
    try:
        threads = 1 if connections == 1 else 2
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
                   "--timeout", "10s", "-s", script.name, base_url]  # fmt: skip
        text, wall, cpu = _run_child(command)
    finally:
        Path(script.name).unlink(missing_ok=True)
    data = _parse(text)[0]
    seconds = data["duration_us"] / 1e6
    good = int(data["requests"] - data["errors"])
    return LoadResult(
        tool="wrk",
        connections=connections,
        duration_s=round(seconds, 2),
        requests=int(data["requests"]),
        errors=int(data["errors"]),
        rate=round(good / seconds, 1),
        p50_ms=data["p50"] / 1000,
        p95_ms=data["p95"] / 1000,
        p99_ms=data["p99"] / 1000,
        max_ms=data["max"] / 1000,
        loadgen_cpu_cores=round(cpu / wall, 3),
        error_kinds=data.get("error_kinds"),
    )


def run_python(
    base_url: str, requests: list[Request], connections: int, duration: float
) -> LoadResult:
    """The fallback: bench.aioclient in up to two processes (this machine has two cores)."""
    processes = 1 if connections < 8 else 2
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump(
            {
                "base_url": base_url,
                "connections": connections,
                "processes": processes,
                "duration": duration,
                "requests": [asdict(r) for r in requests],
            },
            spec,
        )
    try:
        text, wall, cpu = _run_child([sys.executable, "-m", "bench.aioclient", spec.name])
    finally:
        Path(spec.name).unlink(missing_ok=True)
    data = _parse(text)[0]
    seconds = data["duration_us"] / 1e6
    good = int(data["requests"] - data["errors"])
    return LoadResult(
        tool="python-asyncio",
        connections=connections,
        duration_s=round(seconds, 2),
        requests=int(data["requests"]),
        errors=int(data["errors"]),
        rate=round(good / seconds, 1),
        p50_ms=data["p50"] / 1000,
        p95_ms=data["p95"] / 1000,
        p99_ms=data["p99"] / 1000,
        max_ms=data["max"] / 1000,
        loadgen_cpu_cores=round(cpu / wall, 3),
    )


def run_load(
    base_url: str, requests: list[Request], connections: int, duration: float, tool: str = "auto"
) -> LoadResult:
    if tool == "wrk" or (tool == "auto" and wrk_available()):
        return run_wrk(base_url, requests, connections, duration)
    return run_python(base_url, requests, connections, duration)
