"""What the running application holds: settings, database, secret. One per app instance."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from dovecote.core.db import Database
from dovecote.core.settings import Settings
from dovecote.realtime.broker import Broker
from dovecote.realtime.hub import Hub


@dataclass
class AppState:
    settings: Settings
    database: Database
    jwt_secret: bytes
    broker: Broker
    hub: Hub


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.dovecote
    return state
