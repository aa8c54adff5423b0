"""The ASCII line RPM driver: against the simulated monitor on TCP, a recording replayed into
it, and a serial line through a pty pair."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drivers.rpm import RadiationMonitor, open_monitor
from gated.config import RpmConfig
from gated.domain import DeviceHealth, RadiationScan
from hwsim.pty_device import PtyDevice
from hwsim.rpm_ascii import SimulatedAsciiRpm
from tests.servers import free_port

SAMPLE_S = 0.01  # one simulated 200 ms sample every 10 ms: a background report every 0.25 s


@dataclass
class Lane:
    monitor: RadiationMonitor
    health: list[DeviceHealth] = field(default_factory=list)

    async def scan(self, within: float = 5.0) -> RadiationScan:
        return await asyncio.wait_for(self.monitor.scans.get(), within)

    async def until(self, condition: Callable[[], bool], within: float = 5.0) -> None:
        """Wait for a state the driver reaches by itself."""
        for _ in range(int(within / 0.01)):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"condition not reached within {within} s")


@contextlib.asynccontextmanager
async def running(config: RpmConfig) -> AsyncIterator[Lane]:
    health: list[DeviceHealth] = []
    monitor = open_monitor("2", config, sigma=6.0, on_health=health.append)
    task = asyncio.create_task(monitor.run(), name="test ascii rpm")
    try:
        yield Lane(monitor, health)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def tcp_config(port: int) -> RpmConfig:
    return RpmConfig(
        transport="ascii_tcp", host="127.0.0.1", port=port, line_timeout_s=1.5,
        timeout_s=0.5, backoff_cap_s=0.2,
    )


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedAsciiRpm]:
    sim = SimulatedAsciiRpm(port=free_port(), sample_period_s=SAMPLE_S, seed=11)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def lane(sim: SimulatedAsciiRpm) -> AsyncIterator[Lane]:
    async with running(tcp_config(sim.port)) as lane:
        await lane.until(lambda: lane.monitor.healthy)
        yield lane


async def test_clean_truck_then_source_over_tcp(sim: SimulatedAsciiRpm, lane: Lane) -> None:
    sim.begin_occupancy("clean", duration_s=3.0)
    await lane.until(lambda: lane.monitor.occupied)
    clean = await lane.scan()
    assert clean.clean and clean.occupancy_id == 1 and len(clean.peak_gamma_sigma) == 4

    await asyncio.sleep(0.3)  # a background report between the trucks
    sim.begin_occupancy("source", duration_s=3.0)
    hot = await lane.scan()
    assert hot.monitor_gamma_alarm and hot.gamma_alarm and not hot.clean
    assert [h.up for h in lane.health] == [True]


async def test_fault_and_tamper_lines_fail_the_lane_closed(
    sim: SimulatedAsciiRpm, lane: Lane
) -> None:
    sim.set_fault(True, kind="gamma_low")
    await lane.until(lambda: not lane.monitor.healthy)
    assert lane.monitor.health_reason == "gamma_low_background"
    sim.set_fault(False)
    await lane.until(lambda: lane.monitor.healthy)

    sim.set_tamper(True)
    await lane.until(lambda: lane.monitor.health_reason == "tamper")
    sim.set_tamper(False)
    await lane.until(lambda: lane.monitor.healthy)
    assert [h.up for h in lane.health] == [True, False, True, False, True]


async def test_dropped_connection_and_silence_cut_the_occupancy(
    sim: SimulatedAsciiRpm, lane: Lane
) -> None:
    sim.begin_occupancy("clean", duration_s=20.0)
    await lane.until(lambda: lane.monitor.occupied)
    sim.drop_connections()
    cut = await lane.scan()
    assert not cut.complete and "connection_lost" in cut.faults and not cut.clean
    await lane.until(lambda: sim.clients == 1)
    # the rest of that truck arrives on the new connection, before any background on it
    rest = await lane.scan()
    assert "no_gamma_background" in rest.faults and not rest.clean
    await lane.until(lambda: lane.monitor.healthy)

    sim.set_silent(True)
    await lane.until(lambda: not lane.monitor.healthy)
    assert "no line for 1.5 s" in lane.monitor.health_reason
    sim.set_silent(False)
    await lane.until(lambda: lane.monitor.healthy)


async def test_garbage_in_an_occupancy_marks_it_and_nothing_crashes(
    sim: SimulatedAsciiRpm, lane: Lane
) -> None:
    sim.begin_occupancy("clean", duration_s=2.0)
    await lane.until(lambda: lane.monitor.occupied)
    sim.send("GS,0000\x07\x00,zz")
    sim.send("x" * 5000)  # longer than any line: the stream is resynchronised
    scan = await lane.scan()
    assert not scan.clean
    assert {"corrupt_data", "connection_lost"} & set(scan.faults)
    await lane.until(lambda: lane.monitor.healthy)


async def test_replayed_recordings_give_the_recorded_verdicts(
    shared_data: Path, sim: SimulatedAsciiRpm, lane: Lane
) -> None:
    await sim.stop()
    await sim.start(sampling=False)
    await lane.until(lambda: sim.clients == 1)
    rpm_dir = shared_data / "field" / "rpm"

    sent = await sim.replay(rpm_dir / "S2-C3-NORM2.csv", speed=5000.0)
    await asyncio.sleep(0.1)
    scans = [lane.monitor.scans.get_nowait() for _ in range(lane.monitor.scans.qsize())]
    assert sent > 13000
    assert [s.occupancy_id for s in scans] == list(range(109, 134))
    assert all(s.complete and s.monitor_gamma_alarm and s.gamma_alarm for s in scans)

    await sim.replay(rpm_dir / "S2-C0-NONE.csv", speed=5000.0)
    await asyncio.sleep(0.1)
    scans = [lane.monitor.scans.get_nowait() for _ in range(lane.monitor.scans.qsize())]
    assert [s.occupancy_id for s in scans] == list(range(17, 42))
    assert all(s.clean for s in scans)


async def test_serial_line_through_a_pty(tmp_path: Path) -> None:
    device = PtyDevice(tmp_path / "ttyRPM", "rpm")
    config = RpmConfig(
        transport="ascii_serial", serial_port=str(tmp_path / "ttyRPM"), line_timeout_s=2.0
    )
    try:
        async with running(config) as lane:
            await asyncio.sleep(0.2)  # the driver opens the port
            device.write(b"GB,000380,000380,000400,000370\r\nNB,000003,000002,000000,000000\r\n")
            await lane.until(lambda: lane.monitor.healthy)
            lines = ["GS,000076,000076,000080,000074"] * 8 + ["GX,000005,000000,000000,000000"]
            device.write(("\r\n".join(lines) + "\r\n").encode())
            scan = await lane.scan()
            assert scan.occupancy_id == 5 and scan.complete and scan.clean
    finally:
        device.close()
