"""Running uvicorn so that live sockets hear 1001 ("going away") on shutdown.

uvicorn's own shutdown closes every WebSocket with 1012 before the application's lifespan
shutdown runs, so the application cannot say goodbye first. `GracefulServer` closes this
process's live sockets with 1001 (after which clients reconnect elsewhere, with `since`)
before handing over to uvicorn's shutdown.

With several workers, uvicorn's supervisor starts each worker with the `spawn` method and the
worker builds its server from `multiprocess.Process.server`. Rebinding a module name in the
supervisor does not reach a spawned worker; a Process subclass does, because the worker
unpickles it by reference to this module. tests/test_serving.py checks these uvicorn internals
and the behaviour end to end, so an upgrade that moves them fails loudly.
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


class GracefulProcess(multiprocess.Process):
    """A worker process whose server is a GracefulServer."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = GracefulServer(config=self.config)
        return self._server


def use_graceful_workers() -> None:
    """Make the supervisor build (and rebuild, on restarts) its workers as GracefulProcess."""
    multiprocess.Process = GracefulProcess  # type: ignore[misc]


def run(
    config: uvicorn.Config, supervisor: type[multiprocess.Multiprocess] = multiprocess.Multiprocess
) -> None:
    """What `uvicorn.run` does for one process or several workers, with GracefulServer."""
    if config.workers > 1:
        use_graceful_workers()
        supervisor(config, sockets=[config.bind_socket()]).run()
    else:
        GracefulServer(config).run()
