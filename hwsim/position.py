"""A simulated position unit of a yard machine: a TCP server streaming JSON lines.

Each line is one fix: `{"x": m, "y": m, "z": m, "spreader": "locked"|"unlocked", "t": unix s}`,
with x/y in the yard's metres and z the height of the spreader's (container's) bottom above the
ground. Fixes go out at `rate_hz` and at once when the state changes. This is the format
`MachineConfig.position_url` (tcp://host:port) points at.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hwsim.llrp.tagfield import TagField

_LOGGER = logging.getLogger(__name__)


@dataclass(slots=True)
class PositionFaults:
    silent: bool = False
    """Send nothing while keeping connections open (a hung unit)."""

    garbage: bool = False
    """Send a line that is not JSON before every fix."""


class PositionUnit:
    """A machine's position unit on loopback; the world simulator moves it and works the spreader.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, rate_hz: float = 10.0, machine: str = "TP"
    ) -> None:
        self.host = host
        self.port = port
        self.machine = machine
        self.period_s = 1.0 / rate_hz
        self.x = 0.0
        self.y = 0.0
        self.z = 0.0
        self.locked = False
        self.faults = PositionFaults()
        self.fixes_sent = 0
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        _LOGGER.info("%s: simulated position unit on %s:%d", self.machine, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop_connections()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> PositionUnit:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    # --- the world's controls ------------------------------------------------------------------

    def move_to(self, x: float, y: float, z: float | None = None) -> None:
        self.x, self.y = x, y
        if z is not None:
            self.z = z
        self._changed.set()

    def lock(self) -> None:
        """Spreader twistlocks locked: a container is on the spreader."""
        self.locked = True
        self._changed.set()

    def unlock(self) -> None:
        self.locked = False
        self._changed.set()

    def drop_connections(self) -> None:
        for writer in list(self._clients):
            writer.transport.abort()

    def fix(self) -> dict[str, object]:
        return {
            "x": round(self.x, 3),
            "y": round(self.y, 3),
            "z": round(self.z, 3),
            "spreader": "locked" if self.locked else "unlocked",
            "t": round(time.time(), 3),
        }

    # --- serving ------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._clients.add(writer)
        try:
            while not writer.transport.is_closing():
                if not self.faults.silent:
                    if self.faults.garbage:
                        writer.write(b"{not json\n")
                    writer.write(json.dumps(self.fix()).encode() + b"\n")
                    self.fixes_sent += 1
                    await writer.drain()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.period_s):
                        await self._changed.wait()
                # every client gets the change; the flag is cleared once all had a chance
                await asyncio.sleep(0)
                self._changed.clear()
        except ConnectionError:
            pass
        finally:
            self._clients.discard(writer)
            writer.transport.abort()
            self._handlers.discard(task)


async def perform_lift(
    unit: PositionUnit,
    field: TagField,
    epc: str,
    pick: tuple[float, float, float],
    drop: tuple[float, float, float],
    *,
    antenna: int = 1,
    travel_s: float = 2.0,
    rate: float = 20.0,
    rssi: float = -45.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """A machine takes a container at `pick` and sets it down at `drop`.

    The tag under the spreader (the container's, or the truck's when the container comes off a
    truck) answers the machine's reader from just before the lock until the container is
    lifted clear. `sleep` lets a world simulator run on its own clock.
    """
    step = travel_s / 4
    unit.unlock()
    unit.move_to(pick[0], pick[1], pick[2] + 3.0)
    await sleep(step)
    unit.move_to(*pick)  # spreader down on the container
    field.show(epc, antenna, duration_s=2 * step, rate=rate, rssi=rssi)
    await sleep(step / 2)
    unit.lock()
    await sleep(step / 2)
    unit.move_to(pick[0], pick[1], pick[2] + 3.0)  # lifted clear
    await sleep(step)
    unit.move_to(*drop)
    await sleep(step)
    unit.unlock()
    await sleep(step / 4)
    unit.move_to(drop[0], drop[1], drop[2] + 3.0)
