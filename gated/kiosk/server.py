"""Serving the kiosk inside `gated run`: uvicorn in the daemon's event loop, stopped by
cancelling the task that runs it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import uvicorn

_LOGGER = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the daemon it runs in."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


class KioskServer:
    """The kiosk's HTTP server. `run()` serves until cancelled, then shuts down gracefully:
    open board streams are told to end and requests get `grace_s` to finish."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        sock: socket.socket | None = None,
        grace_s: float = 3.0,
    ) -> None:
        self._app = app
        self._host = host
        self._sock = sock
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=max(1, int(grace_s)),
            server_header=False,
        )
        self._server = _EmbeddedServer(config)

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    @property
    def port(self) -> int | None:
        """The port actually bound (useful with port 0), once started."""
        for server in getattr(self._server, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return None

    async def run(self) -> None:
        task = asyncio.create_task(
            self._server.serve(sockets=[self._sock] if self._sock else None),
            name=f"kiosk http {self._host}",
        )
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self._stop()
            try:
                await task
            except SystemExit:
                pass
            raise
        except SystemExit as exc:  # uvicorn exits when it cannot bind
            raise OSError(f"kiosk: cannot serve on {self._host}: {exc}") from None
        finally:
            self._stop()

    def _stop(self) -> None:
        for kiosk in _kiosks_in(self._app):
            kiosk.stopping.set()
        self._server.should_exit = True


def _kiosks_in(app: Any, depth: int = 0) -> list[Any]:
    """The kiosk apps served here: the app itself, or mounted in it (e.g. beside /metrics)."""
    if depth > 4:
        return []
    kiosk = getattr(getattr(app, "state", None), "kiosk", None)
    found = [kiosk] if kiosk is not None else []
    for route in getattr(app, "routes", None) or []:
        mounted = getattr(route, "app", None)
        if mounted is not None and mounted is not app:
            found.extend(_kiosks_in(mounted, depth + 1))
    return found


async def serve(app: Any, host: str, port: int) -> None:
    """Serve the kiosk until cancelled (for `gated run`)."""
    _LOGGER.info("kiosk: serving on http://%s:%s/", host, port)
    await KioskServer(app, host, port).run()
