"""Request-scoped dependencies shared by every router."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from dovecote.core.db import UnitOfWork
from dovecote.core.errors import NotFound
from dovecote.core.routing import unit_of_work
from dovecote.core.schemas import MAX_ID
from dovecote.core.settings import Settings
from dovecote.core.state import app_state


async def _session(request: Request) -> AsyncSession:
    return unit_of_work(request).session


async def _settings(request: Request) -> Settings:
    return app_state(request).settings


async def _unit_of_work(request: Request) -> UnitOfWork:
    # async: FastAPI runs plain-def dependencies in a thread pool, a hop per request.
    return unit_of_work(request)


UoW = Annotated[UnitOfWork, Depends(_unit_of_work)]
Session = Annotated[AsyncSession, Depends(_session)]
AppSettings = Annotated[Settings, Depends(_settings)]


async def _object_id(
    id: Annotated[
        int,
        Path(
            description="A positive integer id.",
            json_schema_extra={"minimum": 1, "maximum": MAX_ID},
        ),
    ],
) -> int:
    """An id in a path names an object: one outside 1..MAX_ID names none, so the answer is the
    404 of a path whose id is not a number at all (`{id:int}` matches digits only)."""
    if not 1 <= id <= MAX_ID:
        raise NotFound()
    return id


ObjectId = Annotated[int, Depends(_object_id)]
