"""Metrics and logs of a real `dovecote serve`: every worker's counts in /metrics whichever
worker answers, a dead worker's gauges dropped, and a whole run's output, at DEBUG, searched
for every secret and message body the run used."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus

from tests.live_server import free_port
from tests.realtime_helpers import HEARTBEAT, WAIT, next_frame, socket
from tests.serve_process import ServeProcess

METRICS_TOKEN = "metrics-" + secrets.token_urlsafe(24)
JWT_SECRET = "jwt-" + secrets.token_urlsafe(40)


def demo_users(server: ServeProcess) -> dict[str, dict[str, str]]:
    users = {}
    for line in server.cli("demo", "--users", "2").splitlines():
        name, *fields = line.split("\t")
        users[name] = dict(field.split("=", 1) for field in fields)
    return users


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


async def scrape(url: str, token: str | None = METRICS_TOKEN) -> dict[Any, float]:
    """On a fresh connection each time, so that either worker may answer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{url}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return samples(response.text)


def healthz(found: dict[Any, float]) -> float:
    labels = frozenset({"method": "GET", "route": "/healthz", "status": "200"}.items())
    return found.get(("dovecote_http_requests_total", labels), 0.0)


def gauge(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def pids_that_counted(run_dir: Path) -> set[int]:
    return {int(p.stem.split("_")[-1]) for p in run_dir.glob("counter_*.db")}


async def test_two_workers_report_each_others_counts(tmp_path: Path) -> None:
    bind_port = free_port()
    with ServeProcess(
        tmp_path / "data",
        workers=2,
        jwt_secret=JWT_SECRET,
        metrics_token=METRICS_TOKEN,
        metrics_bind=f"127.0.0.1:{bind_port}",
        log_format="json",
    ) as server:
        users = demo_users(server)
        await server.start()
        run_dir = server.run_dir()
        assert run_dir.is_dir()

        # Fresh connections, ten at a time, until both workers have answered some.
        made = 0

        async def one() -> None:
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"{server.url}/healthz")).status_code == 200

        while len(pids_that_counted(run_dir)) < 2 and made < 400:
            await asyncio.gather(*(one() for _ in range(10)))
            made += 10
        workers = {child.pid for child in psutil.Process(server.process.pid).children()}  # type: ignore[union-attr]
        assert len(pids_that_counted(run_dir) & workers) == 2

        # Whichever worker answers, and on the metrics-only listener, the count is everyone's.
        bind = f"http://127.0.0.1:{bind_port}"
        for _ in range(6):
            assert healthz(await scrape(server.url)) == made
        assert healthz(await scrape(bind, token=None)) == made

        # A live socket counts while its worker lives; a killed worker's socket stops counting.
        async with socket(server.url.replace("http", "ws"), users["demo1"]["token"]) as ws:
            assert gauge(await scrape(bind, None), "dovecote_websockets_open") == 1
            holder = _worker_serving(server, ws.local_address[1])
            os.kill(holder, signal.SIGKILL)
            async with asyncio.timeout(3 * WAIT):
                while True:  # the supervisor notices within a second or so
                    found = await scrape(bind, None)
                    if (
                        gauge(found, "dovecote_websockets_open") == 0
                        and gauge(found, "dovecote_db_pool_size", pool="reader") == 2 * 10
                    ):
                        break
                    await asyncio.sleep(0.2)
        assert healthz(found) == made  # the dead worker's counts are kept
        assert holder not in {child.pid for child in psutil.Process(server.process.pid).children()}  # type: ignore[union-attr]
        server.stop()
        assert not run_dir.exists()  # the run's directory goes with it

    lines = server.output().splitlines()
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)
    assert any("marked dead" in json.loads(line)["message"] for line in lines)


def _worker_serving(server: ServeProcess, client_port: int) -> int:
    for child in psutil.Process(server.process.pid).children():  # type: ignore[union-attr]
        for connection in child.net_connections(kind="tcp"):
            if connection.raddr and connection.raddr.port == client_port:
                return child.pid
    raise AssertionError("no worker holds the socket")


# --- a whole run's logs ---------------------------------------------------------------------


async def test_a_whole_run_logs_no_secret(tmp_path: Path) -> None:
    marker = secrets.token_hex(6)
    bodies = [f"body-{marker}-{i}-private words" for i in range(6)]
    file_text = f"file-content-{marker}"
    wrong_password = f"wrong-{marker}-Password"
    bogus = f"bogus{marker}" + "x" * 30
    with ServeProcess(
        tmp_path / "data",
        jwt_secret=JWT_SECRET,
        metrics_token=METRICS_TOKEN,
        log_format="json",
        log_level="debug",
    ) as server:
        users = demo_users(server)
        client = json.loads(server.cli("clients", "create", "app", "--confidential"))
        await server.start()
        secrets_used = [
            JWT_SECRET,
            METRICS_TOKEN,
            client["client_secret"],
            wrong_password,
            bogus,
            file_text,
            *bodies,
            *(u["password"] for u in users.values()),
            *(u["token"] for u in users.values()),
        ]
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            secrets_used += await _scenario(
                server, http, users, client, bodies, file_text, wrong_password, bogus
            )
        server.stop()

    output = server.output()
    lines = output.splitlines()
    records = [json.loads(line) for line in lines]  # one JSON object per line, every line
    leaked = [s for s in secrets_used if s in output]
    assert not leaked, f"{len(leaked)} secrets in the logs, e.g. {leaked[0][:12]}..."
    assert not re.search(r"sig=(?!\[redacted\])", output)

    access = [r for r in records if r["logger"] == "dovecote.access"]
    routes = {r["route"] for r in access}
    for route in ("/oauth/token/", "/api/v2/pm/", "/api/v2/pm/upload/", "/api/v2/pm/files/{uuid}/"):
        assert route in routes
    assert any(r["method"] == "WS" for r in access)
    assert any(r.get("request_id") == f"req-{marker}" for r in access)
    assert any(r["level"] == "DEBUG" for r in records)  # the run really logged at DEBUG


async def _scenario(
    server: ServeProcess,
    http: httpx.AsyncClient,
    users: dict[str, dict[str, str]],
    client: dict[str, str],
    bodies: list[str],
    file_text: str,
    wrong_password: str,
    bogus: str,
) -> list[str]:
    """Sign-in, sends, files, a live socket and errors; returns the secrets it was given."""
    given: list[str] = []
    oauth = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
    login = {"grant_type": "password", "username": "demo1", "password": users["demo1"]["password"]}
    tokens = (await http.post("/oauth/token/", data={**oauth, **login})).json()
    given += [tokens["access_token"], tokens["refresh_token"]]
    wrong = {**login, "password": wrong_password}
    assert (await http.post("/oauth/token/", data={**oauth, **wrong})).status_code == 400
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    tokens = (await http.post("/oauth/token/", data={**oauth, **refresh})).json()
    given += [tokens["access_token"], tokens["refresh_token"]]
    anna = {"Authorization": f"Bearer {tokens['access_token']}"}
    bruno = {"Authorization": f"Bearer {users['demo2']['token']}"}
    to_bruno = int(users["demo2"]["id"])

    sent = await http.post(
        "/api/v2/pm/",
        json={"recipients": [to_bruno], "message": bodies[0]},
        headers={**anna, "Idempotency-Key": f"key-{bodies[0][:8]}", "X-Request-ID": "x" * 200},
    )
    assert sent.status_code == 201
    form = {"recipients": str(to_bruno), "message": bodies[1]}
    assert (await http.post("/api/v2/pm/", data=form, headers=anna)).status_code == 201

    upload = await http.post(
        "/api/v2/pm/upload/", files={"file": ("notes.txt", file_text.encode())}, headers=anna
    )
    assert upload.status_code == 200, upload.text
    uuid = upload.json()["file_uuid"]
    with_file = {"recipients": [to_bruno], "message": bodies[2], "file_uuid": uuid}
    assert (await http.post("/api/v2/pm/", json=with_file, headers=anna)).status_code == 201
    thread = await http.get(f"/api/v2/pm/?user={users['demo1']['id']}", headers=bruno)
    links = [m["file"]["url"] for m in thread.json()["results"] if m.get("file")]
    assert links
    given += links + [link.split("sig=")[1] for link in links]
    fetched = await http.get(links[0])
    assert fetched.status_code == 200 and fetched.content == file_text.encode()
    assert (await http.get(links[0].split("sig=")[0] + "sig=forged")).status_code == 404

    base = server.url.replace("http", "ws")
    async with socket(base, users["demo2"]["token"]) as ws, socket(base, tokens["access_token"]):
        body = {"recipients": [to_bruno], "message": bodies[3]}
        assert (await http.post("/api/v2/pm/", json=body, headers=anna)).status_code == 201
        frame = await next_frame(ws)
        assert bodies[3] in json.dumps(frame)
        await ws.send(HEARTBEAT)
        async with asyncio.timeout(WAIT):
            assert await ws.recv() == HEARTBEAT
    with pytest.raises(InvalidStatus) as refused:
        async with socket(base, bogus):
            pass
    assert refused.value.response.status_code == 401

    # errors: a bad token, a forbidden thread, a refused send, bad bodies, a token in a query
    assert (
        await http.get("/api/v2/pm/", headers={"Authorization": f"Bearer {bogus}"})
    ).status_code == 401
    assert (await http.get("/api/v2/pm/?thread=999999", headers=bruno)).status_code == 404
    stranger = {"recipients": [999], "message": bodies[4]}
    assert (await http.post("/api/v2/pm/", json=stranger, headers=anna)).status_code == 400
    broken = bodies[5].encode() + b"{"
    answer = await http.post(
        "/api/v2/pm/", content=broken, headers={**anna, "Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    query = await http.get(
        f"/api/v2/pm/?access_token={tokens['access_token']}",
        headers={"X-Request-ID": f"req-{bodies[0].split('-')[1]}"},
    )
    assert query.headers["x-request-id"] == f"req-{bodies[0].split('-')[1]}"
    metrics = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert metrics.status_code == 200
    revoke = {"client_id": client["client_id"], "token": tokens["access_token"]}
    assert (await http.post("/oauth/revoke_token/", data={**revoke, **oauth})).status_code == 200
    return given


def test_bad_metrics_settings_stop_serve_with_one_line(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "data", metrics_token="short-secret")
    done = subprocess.run(
        [sys.executable, "-m", "dovecote", "serve", "--port", str(server.port)],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: DOVECOTE_METRICS_TOKEN must be at least 16 characters long; it is 12."
    )
    assert "short-secret" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
