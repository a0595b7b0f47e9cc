"""The one place that commits: a route class that commits before the response is sent.

FastAPI runs the cleanup of `yield` dependencies after the response has gone out, so a commit
there would acknowledge data that is not durable yet. This route wraps the endpoint instead:
the response object is built, the transaction commits, and only then is it returned to Starlette
to be sent. Side effects queued with `UnitOfWork.after_commit` run after the commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, APIRouter

from dovecote.core.db import AfterCommit, UnitOfWork
from dovecote.core.errors import DovecoteError

log = logging.getLogger("dovecote")

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_background: set[asyncio.Task[None]] = set()


def unit_of_work(request: Request) -> UnitOfWork:
    uow: UnitOfWork | None = getattr(request.state, "uow", None)
    if uow is None:
        uow = UnitOfWork(
            request.app.state.dovecote.database, write=request.method not in READ_METHODS
        )
        request.state.uow = uow
    return uow


async def _run_side_effects(callbacks: list[AfterCommit]) -> None:
    for callback in callbacks:
        try:
            await callback()
        except Exception:  # a failed nudge never turns into a failed request
            log.exception("after-commit side effect failed")


async def _quiet_rollback(uow: UnitOfWork) -> None:
    # The original error is what the client must hear about, not a failed rollback after it.
    try:
        await uow.rollback()
    except Exception:
        log.warning("rollback failed", exc_info=True)


async def _confirm_caller(request: Request) -> None:
    """A route taking `auth.dependencies.CurrentCaller` may leave the database's word on the
    token's user to its own statement; no answer but a 401 leaves before that word is in
    (free when the statement gave it, one query otherwise)."""
    confirm = getattr(request.state, "confirm_caller", None)
    if confirm is not None:
        await confirm()


class CommittingRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def commit_then_respond(request: Request) -> Response:
            uow = unit_of_work(request)
            try:
                try:
                    response = await handler(request)
                except (DovecoteError, RequestValidationError):
                    await _confirm_caller(request)  # a 401 replaces the error, if one is due
                    raise
                await _confirm_caller(request)
                if response.status_code < 400 or uow.commit_on_error:
                    callbacks = await uow.commit()
                    if callbacks:
                        task = asyncio.create_task(_run_side_effects(callbacks))
                        _background.add(task)
                        task.add_done_callback(_background.discard)
                else:
                    await uow.rollback()
                return response
            except BaseException:
                if uow.commit_on_error:
                    await uow.commit()
                else:
                    await _quiet_rollback(uow)
                raise
            finally:
                try:
                    await uow.close()
                except Exception:
                    log.warning("closing the session failed", exc_info=True)

        return commit_then_respond


class Router(APIRouter):
    """Committing routes, each served with and without its trailing slash (no redirects:
    clients POST and DELETE to both spellings and a redirect would lose the body)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("route_class", CommittingRoute)
        super().__init__(**kwargs)

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().add_api_route(path, endpoint, **kwargs)
        twin = path[:-1] if path.endswith("/") else path + "/"
        if len(self.prefix + twin) > 1:  # "/" under a prefix: "/api/v2/pm" is a twin too
            kwargs = {**kwargs, "include_in_schema": False}
            super().add_api_route(twin, endpoint, **kwargs)
