"""`dovecote serve` reaches into uvicorn's internals (realtime/serving.py) so that live sockets
hear 1001 before uvicorn's own shutdown says 1012. These tests fail loudly when a uvicorn
upgrade moves what is patched: first the names and signatures, then the behaviour end to end,
with several worker processes as in production."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from uvicorn.supervisors import multiprocess
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from dovecote.core import security
from dovecote.realtime import serving
from tests.conftest import SECRET
from tests.realtime_helpers import HEARTBEAT, WAIT, closed_with


def test_the_uvicorn_internals_that_serving_relies_on_are_still_there() -> None:
    shutdown = inspect.signature(uvicorn.Server.shutdown)
    assert inspect.iscoroutinefunction(uvicorn.Server.shutdown)
    assert list(shutdown.parameters) == ["self", "sockets"]
    assert list(inspect.signature(uvicorn.Server.__init__).parameters) == ["self", "config"]
    # The supervisor of several workers builds each worker's Process, and each Process builds
    # its Server, through these module names and this property.
    assert multiprocess.Process is not None and multiprocess.Multiprocess is not None
    assert isinstance(inspect.getattr_static(multiprocess.Process, "server"), property)
    assert list(inspect.signature(multiprocess.Process.__init__).parameters) == [
        "self",
        "config",
        "sockets",
    ]


def test_worker_processes_are_built_with_the_graceful_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a worker process does when it starts, done here without starting it."""
    config = uvicorn.Config("dovecote.app:create_app", factory=True, workers=2)
    monkeypatch.setattr(multiprocess, "Process", multiprocess.Process)  # undone after the test
    serving.use_graceful_workers()
    process = multiprocess.Process(config, sockets=[])
    assert isinstance(process.server, serving.GracefulServer)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """`dovecote serve --workers 2`, a real supervisor and two worker processes."""
    env = {
        **os.environ,
        "DOVECOTE_DATA_DIR": str(tmp_path / "data"),
        "DOVECOTE_DATABASE_URL": database_url,
        "DOVECOTE_JWT_SECRET": SECRET,
    }
    created = subprocess.run(
        [sys.executable, "-m", "dovecote", "users", "create", "anna"],
        env=env,
        capture_output=True,
        check=True,
        cwd=tmp_path,
    )
    user_id = int(created.stdout.split(b'"id": ')[1].split(b",")[0])
    token = security.issue_jwt(SECRET.encode(), user_id, lifetime=timedelta(minutes=10))
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dovecote", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError("dovecote serve did not come up") from None
                time.sleep(0.2)
        yield f"ws://127.0.0.1:{port}", token, server
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout=30)


async def test_several_workers_say_1001_on_sigterm_not_uvicorns_1012(
    served: tuple[str, str, subprocess.Popen[bytes]],
) -> None:
    base, token, server = served
    url = f"{base}/ws/notify?subscribe-user"
    protocols = [Subprotocol(f"__{token}")]
    async with connect(url, subprotocols=protocols, open_timeout=WAIT, ping_interval=None) as ws:
        await ws.send(HEARTBEAT)
        assert await ws.recv() == HEARTBEAT
        server.send_signal(signal.SIGTERM)  # the supervisor passes it to the workers
        assert await closed_with(ws) == 1001
    async with asyncio.timeout(30):
        while server.poll() is None:  # noqa: ASYNC110 - a child process offers no event
            await asyncio.sleep(0.1)
    assert server.returncode == 0
