"""Does the server's memory stay flat while a large file is uploaded in chunks?

Starts a real server (`dovecote serve`, SQLite, a temporary data directory, a free port),
uploads a file (default 200 MiB) exactly as the SelfCommunity UI does (204,800-byte chunks in
series with Content-Range, then ?done), downloads it back through its signed link, checks the
md5, and reports the server's resident memory: before, peak during the upload/finish/download,
and the growth. A script, not a test: run it by hand.

    PYTHONPATH=src python bench/upload_memory.py [--mib 200]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

CHUNK = 204_800


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def dovecote(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dovecote", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"dovecote {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout.strip()


class PeakRss:
    """Samples the resident memory of a process tree every few milliseconds."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        tree = [self.process, *self.process.children(recursive=True)]
        return sum(p.memory_info().rss for p in tree)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(0.005)

    def __enter__(self) -> PeakRss:
        self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def piece(index: int, size: int) -> bytes:
    """Deterministic, incompressible bytes for chunk `index` (the client keeps nothing)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha512(f"{index}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def upload(http: httpx.Client, token: str, total: int) -> tuple[str, str]:
    parts = -(-total // CHUNK)
    md5 = hashlib.md5()
    uuid: str | None = None
    auth = {"Authorization": f"Bearer {token}"}
    for index in range(parts):
        data = piece(index, min(CHUNK, total - index * CHUNK))
        md5.update(data)
        fields: list[tuple[str, tuple[str | None, str | bytes, str | None]]] = [
            ("partindex", (None, str(index), None)),
            ("totalparts", (None, str(parts), None)),
        ]
        if uuid:
            fields.append(("uuid", (None, uuid, None)))
        fields.append(("file", ("blob", data, "application/octet-stream")))
        start = index * CHUNK
        headers = {**auth, "Content-Range": f"bytes {start}-{start + len(data) - 1}/{total}"}
        answer = http.post("/api/v2/pm/upload/", files=fields, headers=headers)
        answer.raise_for_status()
        uuid = answer.json()["file_uuid"]
    assert uuid is not None
    done = http.post(
        "/api/v2/pm/upload/?done",
        files=[
            ("uuid", (None, uuid)),
            ("filename", (None, "big.bin")),
            ("totalparts", (None, str(parts))),
        ],
        headers=auth,
    )
    done.raise_for_status()
    return done.json()["file_url"], md5.hexdigest()


def download_md5(http: httpx.Client, url: str) -> str:
    md5 = hashlib.md5()
    with http.stream("GET", url) as answer:
        answer.raise_for_status()
        for data in answer.iter_bytes(1 << 20):
            md5.update(data)
    return md5.hexdigest()


def wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the server exited during startup")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200, help="size of the file in MiB")
    options = parser.parse_args()
    total = options.mib * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="dovecote-bench-") as directory:
        env = {
            **os.environ,
            "DOVECOTE_DATA_DIR": directory,
            "DOVECOTE_JWT_SECRET": secrets.token_urlsafe(48),
            "DOVECOTE_UPLOAD_MAX_FILE_SIZE": str(total + CHUNK),
            "DOVECOTE_UPLOAD_MAX_PARTS": str(-(-total // CHUNK) + 1),
            "DOVECOTE_RATELIMIT_ENABLED": "false",
        }
        dovecote(env, "users", "create", "bench")
        token = dovecote(env, "token", "bench", "--minutes", "600")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "dovecote", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(base, server)
            report = run(base, token, total, server.pid)
        finally:
            server.terminate()
            server.wait(10)
        media = sum(p.stat().st_size for p in Path(directory, "media").rglob("*") if p.is_file())
        report["bytes_in_storage_after"] = media
    print(json.dumps(report, indent=2))


def run(base: str, token: str, total: int, pid: int) -> dict[str, object]:
    with httpx.Client(base_url=base, timeout=120) as http:
        upload(http, token, 4 * CHUNK)  # warm up: imports, pools, first allocations
        meter = PeakRss(pid)
        before = meter.now()
        started = time.monotonic()
        with meter:
            url, sent_md5 = upload(http, token, total)
            uploaded = time.monotonic()
            got_md5 = download_md5(http, url)
        ended = time.monotonic()
    mib = 1024 * 1024
    return {
        "file_mib": total / mib,
        "chunks": -(-total // CHUNK),
        "rss_before_mib": round(before / mib, 1),
        "rss_peak_mib": round(meter.peak / mib, 1),
        "rss_growth_mib": round((meter.peak - before) / mib, 1),
        "upload_and_finish_seconds": round(uploaded - started, 1),
        "download_seconds": round(ended - uploaded, 1),
        "md5_matches": sent_md5 == got_md5,
    }


if __name__ == "__main__":
    main()
