"""Running the gateway as ``tao serve`` does: uvicorn, with a shutdown that cannot hang.

``GatewayServer`` is a ``uvicorn.Server`` that, on the first SIGTERM/SIGINT, tells the gateway at once
(``Gateway.begin_shutdown``): new requests get 503, in-flight ones get ``shutdown_timeout_s`` to finish and are
then answered with a 503 (the running ``generate`` call is interrupted), so uvicorn's wait for open connections
ends within that deadline. uvicorn's own graceful-shutdown timeout is set a little above it, as a backstop.
``on_started`` runs once uvicorn listens (after the app's startup: the log's directory lock is held), which is
when ``tao serve`` prints its banner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import uvicorn

from opentao.serve.batcher import INTERRUPT_GRACE_S


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, gateway, on_started: Callable[[], None] | None = None):
        super().__init__(config)
        self.gateway = gateway
        self.on_started = on_started
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started and self.on_started is not None:
            self.on_started()

    def handle_exit(self, sig, frame) -> None:
        first = not self.should_exit
        super().handle_exit(sig, frame)
        if first and self._loop is not None:
            self._loop.call_soon_threadsafe(self.gateway.begin_shutdown)


def serve_gateway(web, *, host: str, port: int, on_started: Callable[[], None] | None = None) -> GatewayServer:
    """Serve ``web`` (a ``create_app`` app) until a signal; returns the server (``.gateway.batcher.stuck``)."""
    gw = web.state.gateway
    backstop = gw.settings.shutdown_timeout_s + INTERRUPT_GRACE_S + 5
    config = uvicorn.Config(web, host=host, port=port, log_level="warning", timeout_graceful_shutdown=backstop)
    server = GatewayServer(config, gw, on_started)
    server.run()
    return server
