"""`dovecote serve` as an operator runs it: its options, end to end in a real process."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.realtime_helpers import next_frame, socket
from tests.serve_process import ServeProcess


def demo_tokens(server: ServeProcess) -> dict[str, tuple[int, str]]:
    tokens = {}
    for line in server.cli("demo", "--users", "2").splitlines():
        name, *fields = line.split("\t")
        values = dict(field.split("=", 1) for field in fields)
        tokens[name] = (int(values["id"]), values["token"])
    return tokens


@pytest.mark.parametrize(("options", "extension"), [((), None), (("--deflate",), "deflate")])
async def test_deflate_compresses_live_frames_only_when_asked(
    tmp_path: Path, options: tuple[str, ...], extension: str | None
) -> None:
    with ServeProcess(tmp_path / "data") as server:
        users = demo_tokens(server)
        await server.start(*options)
        (_, sender), (receiver_id, receiver) = users["demo1"], users["demo2"]
        async with socket(server.url.replace("http", "ws"), receiver) as ws:
            agreed = ws.response.headers.get("Sec-WebSocket-Extensions")  # type: ignore[union-attr]
            async with httpx.AsyncClient() as http:
                sent = await http.post(
                    f"{server.url}/api/v2/pm/",
                    json={"recipients": [receiver_id], "message": "compressed? " * 50},
                    headers={"Authorization": f"Bearer {sender}"},
                )
            assert sent.status_code == 201
            frame = await next_frame(ws)

    # The client offers permessage-deflate; the server takes it up only with --deflate.
    assert (agreed or "").startswith("permessage-deflate") is (extension == "deflate")
    assert frame["notification_obj"]["message"]["message"] == "compressed? " * 50
