"""A simulated radiation portal monitor speaking the ASCII line protocol on TCP, and replay of
recorded vendor files into it.

Live mode uses the same `PortalPhysics` as the Modbus monitor and writes what a monitor writes:
GB/NB backgrounds every 5 s while idle (GH/GL/NH instead when faulted), GS/GA gamma samples
every 200 ms and NS/NA neutron samples every second while occupied, GX at the end, TT/TC for
tamper. `replay()` sends a recorded file instead, without its timestamps, paced by them (or by
the protocol's own rhythm when the file has none) and `speed` times faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from pathlib import Path
from typing import Literal

from hwsim.rpm import SAMPLE_S, Cargo, PortalPhysics, paced_lines

_LOGGER = logging.getLogger(__name__)

FaultKind = Literal["gamma_high", "gamma_low", "neutron_high"]
BACKGROUND_EVERY = 25  # samples: one background report every 5 s of monitor time
NEUTRON_EVERY = 5  # samples: one neutron sample per second


def _fields(values: object) -> str:
    return ",".join(f"{int(v):06d}" for v in values)  # type: ignore[attr-defined]


class SimulatedAsciiRpm:
    """An ASCII-protocol monitor on host:`port`; every connected client gets every line."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1600,
        *,
        sample_period_s: float = SAMPLE_S,
        physics: PortalPhysics | None = None,
        seed: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.sample_period_s = sample_period_s
        self.physics = physics or PortalPhysics(seed=seed)
        self.fault: FaultKind | None = None
        self.tamper = False
        self.silent = False
        self.lines_sent = 0
        self._clients: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[object]] = set()
        self._server: asyncio.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._samples = 0
        self._replaying = False

    # --- the world's handles --------------------------------------------------------------

    def begin_occupancy(self, cargo: Cargo = "clean", duration_s: float = 8.0) -> None:
        self.physics.begin(cargo, duration_s)
        self._samples = 0

    def set_fault(self, on: bool = True, kind: FaultKind = "gamma_high") -> None:
        """A background fault, reported at once and with every background until cleared."""
        self.fault = kind if on else None
        self._background()

    def set_tamper(self, on: bool = True) -> None:
        self.tamper = on
        self.send("TT,000000,000000,000000,000000" if on else "TC,000000,000000,000000,000000")

    def set_silent(self, on: bool = True) -> None:
        """Keep the connection open but send nothing (a hung monitor)."""
        self.silent = on

    def drop_connections(self) -> None:
        for writer in list(self._clients):
            writer.close()
        self._clients.clear()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def send(self, line: str) -> None:
        """Write one line (CRLF added) to every client; also used to inject garbage."""
        if self.silent:
            return
        data = line.encode("ascii", errors="replace") + b"\r\n"
        for writer in list(self._clients):
            if writer.is_closing():
                self._clients.discard(writer)
                continue
            writer.write(data)
        self.lines_sent += 1

    # --- server ---------------------------------------------------------------------------

    async def start(self, *, sampling: bool = True) -> None:
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        if sampling:
            self._task = asyncio.create_task(
                self._sample_loop(), name=f"hwsim ascii rpm {self.port}"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.drop_connections()
        # each handler ends by itself once its connection is closed; let them, rather than
        # leave them to be cancelled at loop shutdown
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=2.0)
        if server is not None:
            await server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        self._clients.add(writer)
        _LOGGER.debug("hwsim ascii rpm %d: client connected", self.port)
        if not self._replaying:
            self._background()  # a monitor greets a new client with its backgrounds
        try:
            await reader.read()  # clients only listen; returns when they hang up
        except (ConnectionError, OSError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    # --- live monitor ---------------------------------------------------------------------

    async def _sample_loop(self) -> None:
        idle = 0
        while True:
            await asyncio.sleep(self.sample_period_s)
            if self._replaying:
                continue
            physics = self.physics
            if not physics.occupied:
                physics.sample()
                idle += 1
                if idle % BACKGROUND_EVERY == 0:
                    self._background()
                continue
            gamma, _ = physics.sample()
            self._samples += 1
            self.send(("GA," if physics.gamma_alarm else "GS,") + _fields(gamma))
            if self._samples % NEUTRON_EVERY == 0:
                neutron = list(physics.neutron_window()) + [0, 0]
                self.send(("NA," if physics.neutron_alarm else "NS,") + _fields(neutron[:4]))
            if physics.advance():
                neutron_bg = int(1000 * float(sum(physics.neutron_estimate)))
                self.send(f"GX,{physics.occupancy_id:06d},{neutron_bg:06d},000000,000000")
                idle = 0

    def _background(self) -> None:
        if self.physics.occupied:
            return
        gamma = [round(v) for v in self.physics.gamma_estimate]
        neutron = [math.floor(v + 0.5) for v in self.physics.neutron_estimate] + [0, 0]
        gamma_kind = {"gamma_high": "GH", "gamma_low": "GL"}.get(self.fault or "", "GB")
        self.send(f"{gamma_kind}," + _fields(gamma))
        self.send(("NH," if self.fault == "neutron_high" else "NB,") + _fields(neutron[:4]))

    # --- replay ---------------------------------------------------------------------------

    async def replay(
        self, path: str | Path, speed: float = 1.0, max_gap_s: float | None = None
    ) -> int:
        """Send a recorded file to the clients; returns the number of lines sent."""
        self._replaying = True
        sent = 0
        try:
            async for line in paced_lines(path, speed, max_gap_s):
                self.send(line)
                sent += 1
        finally:
            self._replaying = False
        return sent
