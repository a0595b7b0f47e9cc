"""`dovecote users list|block|unblock|deactivate|delete|set-password|unfollow`: the same
services as the API's moderation (tests/test_moderation.py), driven from the command line."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
from asgi_lifespan import LifespanManager
from typer.testing import Result

from dovecote.app import create_app
from dovecote.cli import app as cli
from dovecote.core import security
from dovecote.core.settings import get_settings
from tests.test_cli import env, ok, query, run, runner

__all__ = ["env"]  # the CLI environment fixture, shared with tests/test_cli.py


def _state_of(name: str) -> str:
    for line in ok("users", "list").splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 3 and cells[2] == name:
            return cells[4]
    raise AssertionError(f"{name} not listed")


def _send(sender_id: int, recipient_id: int) -> int:
    """A send through the app, on the database the CLI wrote."""

    async def main() -> int:
        settings = get_settings()
        application = create_app(settings)
        token = security.issue_jwt(
            settings.jwt_secret_bytes(), sender_id, lifetime=timedelta(minutes=5)
        )
        body = {"recipients": [recipient_id], "message": "hello"}
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                headers = {"Authorization": f"Bearer {token}"}
                answer = await http.post("/api/v2/pm/", json=body, headers=headers)
        return answer.status_code

    get_settings.cache_clear()
    return asyncio.run(main())


def _pair() -> tuple[int, int]:
    anna = json.loads(ok("users", "create", "anna", "--password", "first-password"))["id"]
    bruno = json.loads(ok("users", "create", "bruno"))["id"]
    ok("follow", "bruno", "anna")
    return anna, bruno


def test_block_and_unblock_share_the_send_rule(env: dict[str, str]) -> None:
    anna, bruno = _pair()
    assert _state_of("anna") == "active"
    assert "anna is blocked for 3 days" in ok("users", "block", "anna", "--days", "3")
    assert _state_of("anna").startswith("blocked until ")
    assert _send(anna, bruno) == 403
    ok("users", "unblock", "anna")
    assert _state_of("anna") == "active"
    assert _send(anna, bruno) == 201


def test_deactivate_then_delete_then_erase(env: dict[str, str]) -> None:
    anna, bruno = _pair()
    ok("users", "deactivate", "anna")
    assert _state_of("anna") == "deactivated"
    assert _send(anna, bruno) == 401
    ok("users", "delete", "anna")
    assert _state_of("anna") == "deleted"
    again = run("users", "delete", "anna")
    assert again.exit_code == 1 and "already been soft deleted" in again.stderr
    ok("users", "delete", "anna", "--hard")
    assert _state_of(f"deleted-{anna}") == "erased"
    gone = run("users", "delete", "anna", "--hard")
    assert gone.exit_code == 1 and "No user named" in gone.stderr
    rows = query(env["DOVECOTE_DATABASE_URL"], "SELECT followers_counter FROM users ORDER BY id")
    assert [r[0] for r in rows] == [0, 0]  # bruno's follow went with anna


def _typed(text: str, *args: str) -> Result:
    get_settings.cache_clear()
    return runner.invoke(cli, list(args), input=text)


def test_set_password_never_echoes_it(env: dict[str, str]) -> None:
    _pair()
    piped = _typed("second-password\n", "users", "set-password", "anna", "--stdin")
    prompted = _typed("third-password\nthird-password\n", "users", "set-password", "anna")
    for result, password in ((piped, "second-password"), (prompted, "third-password")):
        assert result.exit_code == 0, result.stderr
        assert password not in result.stdout + result.stderr
    (hashed,) = query(
        env["DOVECOTE_DATABASE_URL"], "SELECT password_hash FROM users WHERE username = 'anna'"
    )[0]
    assert asyncio.run(security.verify_password("third-password", hashed, threads=1))
    assert _typed("\n", "users", "set-password", "anna", "--stdin").exit_code == 1


def test_unfollow(env: dict[str, str]) -> None:
    _pair()
    assert "bruno no longer follows anna" in ok("users", "unfollow", "bruno", "anna")
    assert "bruno did not follow anna" in ok("users", "unfollow", "bruno", "anna")
    rows = query(env["DOVECOTE_DATABASE_URL"], "SELECT COUNT(*) FROM follows")
    assert rows == [(0,)]
