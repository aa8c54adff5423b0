"""An asyncio supervisor: named tasks per subsystem, restarted with capped back-off on a crash,
stopped together on SIGTERM/SIGINT within a deadline."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

_LOGGER = logging.getLogger(__name__)

STOP_DEADLINE_S = 5.0


@dataclass(frozen=True)
class Service:
    """A long-running part of the daemon: `run()` returns only when cancelled or broken."""

    name: str
    run: Callable[[], Awaitable[None]]
    restart: bool = True


class Supervisor:
    def __init__(
        self, services: list[Service], backoff_start_s: float = 0.5, backoff_cap_s: float = 30.0
    ) -> None:
        self._services = services
        self._backoff_start_s = backoff_start_s
        self._backoff_cap_s = backoff_cap_s
        self._stop = asyncio.Event()
        self.restarts: dict[str, int] = {s.name: 0 for s in services}

    def stop(self) -> None:
        self._stop.set()

    async def _keep_running(self, service: Service) -> None:
        delay = self._backoff_start_s
        while True:
            try:
                await service.run()
            except asyncio.CancelledError:
                raise
            except (Exception, SystemExit):
                # SystemExit too: a library giving up (uvicorn when its port is taken) must
                # not take the lanes down with it
                _LOGGER.exception("%s crashed", service.name)
            else:
                _LOGGER.info("%s finished", service.name)
                if not service.restart:
                    return
            if not service.restart:
                return
            self.restarts[service.name] += 1
            _LOGGER.warning("%s: restarting in %.1f s", service.name, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_cap_s)

    async def run(self, install_signal_handlers: bool = True) -> None:
        """Run every service until stop() or a signal; then cancel them all and wait."""
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._on_signal, signum)
        tasks = [
            asyncio.create_task(self._keep_running(service), name=service.name)
            for service in self._services
        ]
        _LOGGER.info("supervising %d services: %s", len(tasks),
                     ", ".join(s.name for s in self._services))
        try:
            await self._stop.wait()
        finally:
            _LOGGER.info("stopping %d services", len(tasks))
            for task in tasks:
                task.cancel()
            done, pending = await asyncio.wait(tasks, timeout=STOP_DEADLINE_S)
            for task in pending:
                _LOGGER.error("%s did not stop within %.0f s", task.get_name(), STOP_DEADLINE_S)
            if install_signal_handlers:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)

    def _on_signal(self, signum: int) -> None:
        _LOGGER.info("received %s, stopping", signal.Signals(signum).name)
        self._stop.set()
