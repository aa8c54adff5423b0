"""What every simulated Modbus TCP device shares: the pymodbus server and the ways to fail.

Subclasses describe their memory (`device_blocks`) and run a cycle (`cycle`) every
`cycle_s` seconds, like a PLC scan; the server answers requests from that memory. The test
or the world can make the device answer with exception 4, stop answering, or disappear.
"""

from __future__ import annotations

import abc
import asyncio
import logging

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice

_LOGGER = logging.getLogger(__name__)

FC_COILS = 1
FC_DISCRETE_INPUTS = 2
FC_HOLDING_REGISTERS = 3
FC_INPUT_REGISTERS = 4

STOP_WAIT_S = 1.0  # how long `stop` waits for the cycle task to end after its cancel

Blocks = list[SimData] | tuple[list[SimData], list[SimData], list[SimData], list[SimData]]


class SimulatedModbusDevice(abc.ABC):
    """A Modbus TCP server on host:port with a cycle task and switchable failures."""

    def __init__(self, host: str, port: int, device_id: int, cycle_s: float, name: str) -> None:
        self.host = host
        self.port = port
        self.device_id = device_id
        self.cycle_s = cycle_s
        self.name = name
        self.exception_responses = False
        self.stalled = False
        self.refuse_writes = False
        self.requests = 0
        self._internal = False
        self._server: ModbusTcpServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._release = asyncio.Event()

    @abc.abstractmethod
    def device_blocks(self) -> Blocks:
        """The device's memory as pymodbus simulator blocks."""

    @abc.abstractmethod
    async def cycle(self) -> None:
        """One scan: read commands, move the world on, publish the new state."""

    def set_exception_responses(self, on: bool = True) -> None:
        """Answer every request with exception 4 (device failure)."""
        self.exception_responses = on

    def set_refuse_writes(self, on: bool = True) -> None:
        """Answer every write (commands) with exception 4; reads still work."""
        self.refuse_writes = on

    def set_stalled(self, on: bool = True) -> None:
        """Take requests but never answer them (until unset or stopped)."""
        self.stalled = on
        if not on:
            self._release.set()
            self._release = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._server is not None

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if self._internal:
            return None  # the device's own cycle, not a client
        self.requests += 1
        if self.stalled:
            await self._release.wait()
        if self.exception_responses:
            return ExcCodes.DEVICE_FAILURE
        if self.refuse_writes and set_values is not None:
            return ExcCodes.DEVICE_FAILURE
        return None

    async def start(self) -> None:
        device = SimDevice(id=self.device_id, simdata=self.device_blocks(), action=self._action)
        self._server = ModbusTcpServer(device, address=(self.host, self.port))
        await self._server.serve_forever(background=True)
        await self.cycle()
        self._task = asyncio.create_task(self._cycle_loop(), name=f"hwsim {self.name}")
        _LOGGER.debug("hwsim %s listening on %s:%d", self.name, self.host, self.port)

    async def stop(self) -> None:
        """Stop the cycle, close the server and every client connection.

        Bounded: a cycle that does not end within STOP_WAIT_S of its cancel is reported and
        left behind, and the server is closed all the same, also when `stop` itself is
        cancelled (that cancel is passed on, not taken for the cycle's).
        """
        self._release.set()
        task, self._task = self._task, None
        ended = True
        try:
            if task is not None:
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=STOP_WAIT_S)
                ended = bool(done)
                if not ended:
                    _LOGGER.warning(
                        "hwsim %s: cycle still running %g s after its cancel",
                        self.name, STOP_WAIT_S,
                    )
        finally:
            server, self._server = self._server, None
            if server is not None:
                await server.shutdown()  # closes at once; it does not wait for anything
                await asyncio.sleep(0)
        if task is not None and ended and not task.cancelled():
            task.result()  # a cycle that failed says why here

    async def _cycle_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cycle_s)
            await self.cycle()

    # The device's own access to its memory passes through `_action` too; the flag lets it
    # through whatever failure clients are being shown. The action does not suspend for it,
    # so no client request can run while the flag is set.
    async def write(self, function_code: int, address: int, values: list[int] | list[bool]) -> None:
        if self._server is None:
            return
        self._internal = True
        try:
            await self._server.async_setValues(self.device_id, function_code, address, values)
        finally:
            self._internal = False

    async def read(self, function_code: int, address: int, count: int) -> list[int] | list[bool]:
        if self._server is None:
            return []
        self._internal = True
        try:
            return await self._server.async_getValues(
                self.device_id, function_code, address, count
            )
        finally:
            self._internal = False
