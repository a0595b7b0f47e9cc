"""A real Dovecote server process (`dovecote serve --workers N`) on a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    database_url: str
    data_dir: Path
    jwt_secret: str
    workers: int = 2
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DOVECOTE_DATABASE_URL=self.database_url,
            DOVECOTE_DATA_DIR=str(self.data_dir),
            DOVECOTE_JWT_SECRET=self.jwt_secret,
            DOVECOTE_RATELIMIT_ENABLED="false",
            DOVECOTE_PUBLIC_URL=self.base_url,
        )
        return env

    def start(self, timeout: float = 60) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"server-{self.port}.log"
        command = [sys.executable, "-m", "dovecote", "serve", "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", str(self.workers)]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.log_tail()}")
            if self._ready() and len(self.worker_pids()) >= self._expected_workers():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not become ready in {timeout} s:\n{self.log_tail()}")

    def _expected_workers(self) -> int:
        """uvicorn serves in the supervisor itself when asked for one worker."""
        return self.workers if self.workers > 1 else 0

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def pids(self) -> list[int]:
        """The supervisor and its workers."""
        if self.process is None:
            return []
        return [self.process.pid, *self.worker_pids()]

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        # uvicorn's multiprocessing also starts a resource tracker; workers run the app.
        return [c.pid for c in children if "resource_tracker" not in " ".join(c.cmdline())]

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in self.pids():
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the supervisor (it stops its workers); then any straggler we started, by pid."""
        if self.process is None:
            return
        children = self.pids()[1:]
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for pid in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
        self.process = None
