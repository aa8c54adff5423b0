"""One Modbus TCP connection per device, with one lock, bounded requests and clear errors.

pymodbus does not retry a failed first connect and reconnects on its own only afterwards; the
drivers here want one behaviour they can see, so the client is made without its own reconnect
and every failure (no connection, timeout, exception response) becomes a `ModbusError`. The
caller closes the connection, waits `Backoff.next()` and connects again.

pymodbus waits for its connection and for every answer with `asyncio.wait_for`. On Python 3.11
that returns the result and drops a cancel that arrives while the result is arriving: the
cancelled task then carried on (a driver that polled on after `task.cancel()`, and a caller
awaiting it forever). Every await on pymodbus here therefore checks afterwards whether the task
was cancelled meanwhile and raises the cancel again (`_raise_dropped_cancel`).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

_LOGGER = logging.getLogger(__name__)

MAX_REGISTERS_PER_READ = 120

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


class ModbusError(Exception):
    """A request that did not give a usable answer; `kind` says which way it failed."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # connection | timeout | exception_response | bad_value


class Backoff:
    """Capped exponential delay between reconnects; reset after a success."""

    def __init__(self, first_s: float = 0.1, cap_s: float = 30.0) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self._next = first_s

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.cap_s)
        return delay

    def reset(self) -> None:
        self._next = self.first_s


def _cancel_requests() -> int:
    task = asyncio.current_task()
    return 0 if task is None else task.cancelling()


def _raise_dropped_cancel(before: int) -> None:
    """Raise CancelledError if the task was cancelled since `before` and the cancel was lost.

    Call it outside any `asyncio.timeout` opened after `before` was taken: a timeout that
    expired takes its own cancel back when it exits, so what is left is someone else's.
    """
    if _cancel_requests() > before:
        raise asyncio.CancelledError


def _quiet_pymodbus() -> None:
    """pymodbus warns on every failed connect and retry; the drivers report each loss once
    themselves, so its own log is kept to errors unless someone configured it otherwise."""
    library = logging.getLogger("pymodbus")
    if library.level == logging.NOTSET:
        library.setLevel(logging.ERROR)


class ModbusConnection:
    """A device at host:port, unit `device_id`; requests are serialised by one lock."""

    def __init__(
        self, name: str, host: str, port: int, device_id: int, timeout_s: float = 1.0
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.device_id = device_id
        self.timeout_s = timeout_s
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()
        _quiet_pymodbus()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        """Open the connection or raise ModbusError('connection')."""
        await self.close()
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.timeout_s,
            retries=0,
            reconnect_delay=0,  # reconnects are ours, with our back-off
            name=self.name,
        )
        before = _cancel_requests()
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                ok = await client.connect()
        except (TimeoutError, OSError, ModbusException) as exc:
            client.close()
            _raise_dropped_cancel(before)
            raise ModbusError("connection", f"cannot connect to {self.address}: {exc}") from exc
        except asyncio.CancelledError:
            client.close()
            raise
        if not ok or _cancel_requests() > before:
            client.close()
            _raise_dropped_cancel(before)
            raise ModbusError("connection", f"cannot connect to {self.address}")
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
            await asyncio.sleep(0)  # let the transport finish closing its socket

    async def _call(
        self,
        what: str,
        function: int,
        request: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]],
    ) -> ModbusPDU:
        async with self._lock:
            client = self._client
            if client is None or not client.connected:
                raise ModbusError("connection", f"{self.address} not connected ({what})")
            before = _cancel_requests()
            try:
                async with asyncio.timeout(self.timeout_s * 2):
                    response = await request(client)
            except TimeoutError as exc:
                _raise_dropped_cancel(before)
                raise ModbusError("timeout", f"{self.address}: no answer to {what}") from exc
            except ModbusException as exc:
                _raise_dropped_cancel(before)
                kind = "timeout" if "No response" in str(exc) else "connection"
                raise ModbusError(kind, f"{self.address}: {what}: {exc}") from exc
            _raise_dropped_cancel(before)
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            name = EXCEPTION_NAMES.get(code, "unknown")
            raise ModbusError(
                "exception_response", f"{self.address}: {what} refused: exception {code} ({name})"
            )
        # pymodbus pairs answers by transaction id only: an answer of another function
        # (holding registers for input registers) would pass as the one asked for
        answered = getattr(response, "function_code", None)
        if answered != function:
            raise ModbusError(
                "bad_value", f"{self.address}: {what}: answered with function {answered}"
            )
        return response

    async def read_input_registers(self, address: int, count: int) -> list[int]:
        what = f"read input registers {address}+{count}"
        response = await self._call(
            what,
            4,
            lambda c: c.read_input_registers(address, count=count, device_id=self.device_id),
        )
        return self._registers(response, count, what)

    async def read_holding_registers(self, address: int, count: int) -> list[int]:
        what = f"read holding registers {address}+{count}"
        response = await self._call(
            what,
            3,
            lambda c: c.read_holding_registers(address, count=count, device_id=self.device_id),
        )
        return self._registers(response, count, what)

    async def read_discrete_inputs(self, address: int, count: int) -> list[bool]:
        what = f"read discrete inputs {address}+{count}"
        response = await self._call(
            what,
            2,
            lambda c: c.read_discrete_inputs(address, count=count, device_id=self.device_id),
        )
        if len(response.bits) < count:
            raise ModbusError("bad_value", f"{self.address}: {what}: short answer")
        return list(response.bits[:count])

    async def read_coils(self, address: int, count: int) -> list[bool]:
        what = f"read coils {address}+{count}"
        response = await self._call(
            what, 1, lambda c: c.read_coils(address, count=count, device_id=self.device_id)
        )
        if len(response.bits) < count:
            raise ModbusError("bad_value", f"{self.address}: {what}: short answer")
        return list(response.bits[:count])

    async def write_coil(self, address: int, value: bool) -> None:
        await self._call(
            f"write coil {address}={int(value)}",
            5,
            lambda c: c.write_coil(address, value, device_id=self.device_id),
        )

    def _registers(self, response: ModbusPDU, count: int, what: str) -> list[int]:
        if len(response.registers) != count:
            raise ModbusError(
                "bad_value", f"{self.address}: {what}: {len(response.registers)} registers back"
            )
        return list(response.registers)


def read_plan(fields: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge (address, count) fields into as few reads as possible without large gaps."""
    spans: list[list[int]] = []
    for address, count in sorted(fields):
        end = address + count
        if spans and address - spans[-1][1] <= 8 and end - spans[-1][0] <= MAX_REGISTERS_PER_READ:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([address, end])
    return [(start, end - start) for start, end in spans]


def uint32_low_first(low: int, high: int) -> int:
    """A 32-bit count kept in two registers, low word first."""
    return (high << 16) | low


def float32_low_first(low: int, high: int) -> float:
    """An IEEE 754 float kept in two registers, low word first."""
    return float(struct.unpack(">f", struct.pack(">HH", high, low))[0])


def float32_to_registers(value: float) -> list[int]:
    """Registers (low word first) of an IEEE 754 float: the simulator's side of the map."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [low, high]


def uint32_to_registers(value: int) -> list[int]:
    return [value & 0xFFFF, (value >> 16) & 0xFFFF]
