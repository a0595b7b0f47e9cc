"""Running uvicorn so that live sockets hear 1001 ("going away") on shutdown.

uvicorn's own shutdown closes every WebSocket with 1012 before the application's lifespan
shutdown runs, so the application cannot say goodbye first. `GracefulServer` closes this
process's live sockets with 1001 (after which clients reconnect elsewhere, with `since`)
before handing over to uvicorn's shutdown.
"""

from __future__ import annotations

import socket

import uvicorn
from uvicorn.supervisors import multiprocess

from dovecote.realtime.hub import running_hubs

SOCKET_GRACE_SECONDS = 5.0


class GracefulServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for hub in running_hubs():
            await hub.close(SOCKET_GRACE_SECONDS)
        await super().shutdown(sockets)


def run(
    config: uvicorn.Config, supervisor: type[multiprocess.Multiprocess] = multiprocess.Multiprocess
) -> None:
    """What `uvicorn.run` does for one process or several workers, with GracefulServer."""
    if config.workers > 1:
        # Each worker process builds its server from this module's `Server` name.
        multiprocess.Server = GracefulServer  # type: ignore[attr-defined]
        supervisor(config, sockets=[config.bind_socket()]).run()
    else:
        GracefulServer(config).run()
