"""A Modbus TCP device that answers badly, written byte by byte here: garbage, wrong
transaction or unit ids, wrong function codes, short and long answers, unknown exception codes,
impossible values, half answers, closed connections. The RPM and PLC drivers report the device
down once, count every error, never report a clean scan, and recover when it answers well."""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

from drivers.modbus import float32_to_registers, uint32_to_registers
from drivers.plc import GatePlc
from drivers.rpm import RadiationMonitor, open_monitor
from gated.config import PlcConfig, RpmConfig
from gated.domain import DeviceHealth
from tests.servers import free_port


def _put(memory: dict[int, int], address: int, registers: list[int]) -> None:
    memory[address], memory[address + 1] = registers


def _rpm_memory(heartbeat: int) -> dict[int, int]:
    memory = {0: 0, 1: heartbeat & 0xFFFF, 2: 0}
    for channel in range(4):
        _put(memory, 10 + 2 * channel, uint32_to_registers(200))
        _put(memory, 30 + 2 * channel, float32_to_registers(200.0))
    for channel in range(2):
        _put(memory, 20 + 2 * channel, uint32_to_registers(1))
        _put(memory, 40 + 2 * channel, float32_to_registers(1.0))
    return memory


def _plc_memory(heartbeat: int) -> dict[int, int]:
    return {100: 17, 101: 0, 102: heartbeat & 0xFFFF, 103: 0}


# how each mode spoils a good answer: (request tid, unit, function, pdu) -> bytes or None (stall)
Spoiler = Callable[[int, int, int, bytes], bytes | None]


def _frame(tid: int, unit: int, pdu: bytes, protocol: int = 0) -> bytes:
    return struct.pack(">HHHB", tid, protocol, len(pdu) + 1, unit) + pdu


SPOILERS: dict[str, Spoiler] = {
    "garbage": lambda t, u, f, p: random.Random(t).randbytes(40),
    "wrong-transaction": lambda t, u, f, p: _frame((t + 7) & 0xFFFF, u, p),
    "wrong-protocol": lambda t, u, f, p: _frame(t, u, p, protocol=5),
    "wrong-unit": lambda t, u, f, p: _frame(t, (u + 1) & 0xFF, p),
    "wrong-function": lambda t, u, f, p: _frame(t, u, bytes([f ^ 0x07]) + p[1:]),
    "short-answer": lambda t, u, f, p: _frame(t, u, p[:2] + p[2 : 2 + max(0, (p[1] - 2))]),
    "long-answer": lambda t, u, f, p: _frame(
        t, u, bytes([p[0], p[1] + 2]) + p[2:] + b"\x00\x00"
    ),
    "unknown-exception": lambda t, u, f, p: _frame(t, u, bytes([f | 0x80, 0x99])),
    "device-failure": lambda t, u, f, p: _frame(t, u, bytes([f | 0x80, 0x04])),
    "length-lies": lambda t, u, f, p: struct.pack(">HHHB", t, 0, 2000, u) + p,
    "half-then-stall": lambda t, u, f, p: _frame(t, u, p)[:5],
    "close": lambda t, u, f, p: b"",
}
VALUE_MODES = {"nan-background", "huge-count", "unknown-status-bits", "barrier-position-250",
               "container-count-9"}


@dataclass
class HostileDevice:
    """Answers Modbus requests from `memory`, spoiled by `mode` (None answers well)."""

    port: int
    memory: Callable[[int], dict[int, int]]
    mode: str | None = None
    requests: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    def _values(self, address: int, count: int) -> list[int]:
        memory = self.memory(self.requests)
        if self.mode == "nan-background":
            _put(memory, 30, float32_to_registers(float("nan")))
        elif self.mode == "huge-count":
            _put(memory, 10, uint32_to_registers(0xFFFFFFFF))
        elif self.mode == "unknown-status-bits":
            memory[0] = 0x8000
        elif self.mode == "barrier-position-250":
            memory[101] = 250
        elif self.mode == "container-count-9":
            memory[103] = 9
        return [memory.get(address + i, 0) for i in range(count)]

    def _answer(self, function: int, body: bytes) -> bytes:
        if function in (3, 4):
            address, count = struct.unpack(">HH", body[:4])
            values = self._values(address, count)
            return bytes([function, 2 * count]) + struct.pack(f">{count}H", *values)
        if function in (1, 2):
            _address, count = struct.unpack(">HH", body[:4])
            return bytes([function, (count + 7) // 8]) + b"\x00" * ((count + 7) // 8)
        if function == 5:
            return bytes([function]) + body[:4]
        return bytes([function | 0x80, 0x01])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(7)
                tid, _protocol, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                self.requests += 1
                good = self._answer(pdu[0], pdu[1:])
                spoil = SPOILERS.get(self.mode or "")
                if spoil is None:
                    writer.write(_frame(tid, unit, good))
                else:
                    answer = spoil(tid, unit, pdu[0], good)
                    if answer == b"":
                        return
                    if answer is not None:
                        writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def _until(condition: Callable[[], bool], within: float = 5.0, what: str = "") -> None:
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not reached within {within} s: {what}")


@contextlib.asynccontextmanager
async def _task(
    coro: Coroutine[Any, Any, None], name: str
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(coro, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


RPM_MODES = [*SPOILERS, "nan-background", "huge-count", "unknown-status-bits"]
PLC_MODES = [*SPOILERS, "barrier-position-250", "container-count-9"]


async def test_rpm_survives_every_bad_answer_and_recovers() -> None:
    device = HostileDevice(free_port(), _rpm_memory, mode=RPM_MODES[0])
    await device.start()
    health: list[DeviceHealth] = []
    config = RpmConfig(
        transport="modbus", host="127.0.0.1", port=device.port, poll_interval_s=0.01,
        heartbeat_timeout_s=1.0, timeout_s=0.2, backoff_cap_s=0.05,
    )
    monitor: RadiationMonitor = open_monitor("9", config, sigma=6.0, on_health=health.append)
    try:
        async with _task(monitor.run(), "bad-input rpm") as task:
            for mode in RPM_MODES:
                device.mode = mode
                errors = monitor.errors  # type: ignore[attr-defined]
                await _until(lambda e=errors: monitor.errors >= e + 2, what=mode)  # type: ignore[attr-defined,misc]
                assert not monitor.healthy, mode
                assert monitor.last_error, mode  # type: ignore[attr-defined]
                assert not task.done(), mode
            device.mode = None
            await _until(lambda: monitor.healthy, what="recovery")
        assert [h.up for h in health] == [False, True]
        assert all(h.lane == "9" and h.detail for h in health[:1])
        assert monitor.scans.empty(), "a scan out of a device that never saw a truck"
    finally:
        await device.stop()


async def test_plc_survives_every_bad_answer_and_recovers() -> None:
    device = HostileDevice(free_port(), _plc_memory, mode=PLC_MODES[0])
    await device.start()
    health: list[DeviceHealth] = []
    config = PlcConfig(
        host="127.0.0.1", port=device.port, poll_interval_s=0.01, timeout_s=0.2,
        heartbeat_timeout_s=1.0, backoff_cap_s=0.05,
    )
    plc = GatePlc("9", config, on_health=health.append)
    try:
        async with _task(plc.run(), "bad-input plc") as task:
            for mode in PLC_MODES:
                device.mode = mode
                errors = plc.errors
                await _until(lambda e=errors: plc.errors >= e + 2, what=mode)  # type: ignore[misc]
                assert not plc.healthy and plc.problem, mode
                assert not task.done(), mode
            device.mode = None
            await _until(lambda: plc.healthy, what="recovery")
            assert plc.state.barrier == "closed"
        assert [h.up for h in health] == [False, True]
    finally:
        await device.stop()


@pytest.mark.parametrize("mode", ["device-failure", "half-then-stall", "close"])
async def test_plc_commands_fail_with_a_clear_error(mode: str) -> None:
    from drivers.plc import PlcError

    device = HostileDevice(free_port(), _plc_memory)
    await device.start()
    config = PlcConfig(host="127.0.0.1", port=device.port, poll_interval_s=0.01, timeout_s=0.2,
                       heartbeat_timeout_s=1.0, backoff_cap_s=0.05)
    plc = GatePlc("9", config)
    try:
        async with _task(plc.run(), "bad-input plc"):
            await _until(lambda: plc.healthy, what="healthy first")
            device.mode = mode
            with pytest.raises(PlcError, match="lane 9"):
                await plc.open_barrier()
    finally:
        await device.stop()


# --- a monitor whose gamma panels count nothing ---------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        ["GS,000000,000000,000000,000000"] * 5,
        ["GS,000079,000071,000000,000071"] * 10,
        ["GS,000001,000002,000001,000000"] * 5,
    ],
    ids=["all-panels-silent", "one-panel-silent", "near-zero"],
)
def test_silent_gamma_detectors_are_never_a_clean_scan(lines: list[str]) -> None:
    """Once a clean scan: panels reading nothing (unplugged, dead) during an occupancy gave
    no alarm, so a monitor with dead detectors passed every truck as clean."""
    from drivers.rpm_lines import OccupancyTracker

    tracker = OccupancyTracker(6.0)
    for text in ["GB,000379,000371,000407,000371", "NB,000003,000000,000002,000000", *lines]:
        assert tracker.feed_text(text) is None
    occupancy = tracker.feed_text("GX,000042")
    assert occupancy is not None
    scan = occupancy.to_scan("9")
    assert "gamma_detector_dead" in scan.faults
    assert not scan.clean


def test_zero_background_is_never_a_clean_scan() -> None:
    from drivers.rpm_lines import OccupancyTracker

    tracker = OccupancyTracker(6.0)
    for text in ["GB,000000,000000,000000,000000", "NB,000000,000000,000000,000000",
                 *["GS,000001,000001,000001,000001"] * 5]:
        tracker.feed_text(text)
    occupancy = tracker.feed_text("GX,000043")
    assert occupancy is not None and not occupancy.to_scan("9").clean


def test_shadowed_but_working_detectors_stay_clean() -> None:
    """A truck shadows up to ~40 % of the background: that is not a dead detector."""
    from drivers.rpm_lines import OccupancyTracker

    tracker = OccupancyTracker(6.0)
    for text in ["GB,000379,000371,000407,000371", "NB,000003,000000,000002,000000",
                 *["GS,000045,000044,000049,000044"] * 10]:
        tracker.feed_text(text)
    occupancy = tracker.feed_text("GX,000044")
    assert occupancy is not None
    scan = occupancy.to_scan("9")
    assert scan.faults == () and scan.clean
