"""A real `dovecote serve` in a subprocess (SQLite in its own data directory), with its output
kept in files, and the CLI run against the same directory."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.live_server import free_port

SRC = str(Path(__file__).resolve().parents[1] / "src")
START_SECONDS = 60.0


class ServeProcess:
    def __init__(self, data_dir: Path, workers: int = 1, **settings: str) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DOVECOTE_")},
            "PYTHONPATH": SRC,
            "DOVECOTE_DATA_DIR": str(data_dir),
            "DOVECOTE_RATELIMIT_ENABLED": "false",
            **{f"DOVECOTE_{k.upper()}": v for k, v in settings.items()},
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.stdout = data_dir.parent / f"serve-{self.port}.out"
        self.stderr = data_dir.parent / f"serve-{self.port}.err"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "dovecote", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=START_SECONDS,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    async def start(self, *options: str) -> None:
        command = [sys.executable, "-m", "dovecote", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--workers", str(self.workers), *options]
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                command, env=self.env, stdout=out, stderr=err
            )
        async with httpx.AsyncClient() as http, asyncio.timeout(START_SECONDS):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"dovecote serve exited:\n{self.output()[-3000:]}")
                try:
                    if (await http.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return "".join(
            path.read_text(errors="replace") for path in (self.stdout, self.stderr) if path.exists()
        )

    def run_dir(self) -> Path:
        assert self.process is not None
        return self.data_dir / "metrics" / f"serve-{self.process.pid}"

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()
