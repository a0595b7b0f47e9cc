"""What the running application holds: settings, database, secret. One per app instance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from dovecote.core.broker import Broker, Listener
from dovecote.core.db import Database
from dovecote.core.settings import Settings

if TYPE_CHECKING:
    from dovecote.core.ratelimit import RateLimiter


@dataclass
class AppState:
    settings: Settings
    database: Database
    jwt_secret: bytes
    broker: Broker
    limiter: RateLimiter
    hub: Listener  # realtime's Hub: the ground floor knows it only as the broker's listener


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.dovecote
    return state
