"""A real S3-compatible server for the storage tests: moto's standalone server (`moto[server]`
from the test extra), in its own process on a free port, one bucket per test."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.live_server import free_port

START_SECONDS = 60.0
REGION = "us-east-1"
KEYS = {"s3_access_key_id": "testing", "s3_secret_access_key": "testing-secret"}


@contextmanager
def moto_server() -> Iterator[str]:
    """Start `python -m moto.server`; yield its endpoint URL; stop it (by its pid) after."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(endpoint, process)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_up(endpoint: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("moto's server exited at start")
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("moto's server did not start")


def new_bucket(endpoint: str) -> dict[str, Any]:
    """A fresh bucket on the server; the settings that store uploads in it."""
    import boto3

    bucket = f"dovecote-{secrets.token_hex(6)}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEYS["s3_access_key_id"],
        aws_secret_access_key=KEYS["s3_secret_access_key"],
    )
    client.create_bucket(Bucket=bucket)
    return {
        "storage": "s3",
        "s3_bucket": bucket,
        "s3_prefix": "media/",
        "s3_endpoint_url": endpoint,
        "s3_region": REGION,
        **KEYS,
    }
