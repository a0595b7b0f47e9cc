"""What the running application holds: settings, database, secret. One per app instance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from dovecote.core.db import Database
from dovecote.core.settings import Settings
from dovecote.realtime.broker import Broker
from dovecote.realtime.hub import Hub

if TYPE_CHECKING:
    from dovecote.core.ratelimit import RateLimiter


@dataclass
class AppState:
    settings: Settings
    database: Database
    jwt_secret: bytes
    broker: Broker
    limiter: RateLimiter
    hub: Hub


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.dovecote
    return state
