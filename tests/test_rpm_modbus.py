"""The Modbus RPM driver against the simulated monitor, over real Modbus TCP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drivers.rpm import RadiationMonitor, open_monitor
from drivers.rpm_modbus import ModbusRadiationMonitor
from gated.config import RpmConfig, RpmRegisterMap
from gated.domain import DeviceHealth, RadiationScan
from hwsim.rpm import SimulatedRpm
from tests.servers import free_port
from tests.tasks import end_task, turns_until

SAMPLE_S = 0.02  # one simulated 200 ms sample every 20 ms of real time


@dataclass
class Lane:
    monitor: RadiationMonitor
    sim: SimulatedRpm
    health: list[DeviceHealth] = field(default_factory=list)
    occupancy: list[bool] = field(default_factory=list)

    async def scan(self, within: float = 5.0) -> RadiationScan:
        async with asyncio.timeout(within):  # not wait_for: on 3.11 it can drop a cancel
            return await self.monitor.scans.get()

    async def until(self, condition: Callable[[], bool], within: float = 5.0) -> None:
        """Wait for a state the driver reaches by itself (it has no event for every state)."""
        for _ in range(int(within / 0.01)):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"condition not reached within {within} s")


def config(port: int) -> RpmConfig:
    return RpmConfig(
        transport="modbus",
        host="127.0.0.1",
        port=port,
        poll_interval_s=0.01,
        heartbeat_timeout_s=1.0,
        timeout_s=0.5,
        backoff_cap_s=0.2,
    )


@contextlib.asynccontextmanager
async def running(port: int, sim: SimulatedRpm) -> AsyncIterator[Lane]:
    health: list[DeviceHealth] = []
    occupancy: list[bool] = []
    monitor = open_monitor(
        "1", config(port), sigma=6.0, on_health=health.append, on_occupancy=occupancy.append
    )
    lane = Lane(monitor, sim, health, occupancy)
    task = asyncio.create_task(monitor.run(), name="test rpm monitor")
    try:
        yield lane
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sim.stop()


@pytest.fixture
async def lane() -> AsyncIterator[Lane]:
    port = free_port()
    sim = SimulatedRpm(port=port, sample_period_s=SAMPLE_S, seed=7)
    await sim.start()
    async with running(port, sim) as lane:
        await lane.until(lambda: lane.monitor.healthy)
        await asyncio.sleep(0.15)  # a second of simulated background before the first truck
        yield lane


async def test_clean_truck_gets_a_clean_scan(lane: Lane) -> None:
    lane.sim.begin_occupancy("clean", duration_s=3.0)
    scan = await lane.scan()

    assert scan.clean and scan.complete and not scan.faults
    assert not scan.monitor_gamma_alarm and not scan.gamma_alarm and not scan.neutron_alarm
    assert len(scan.peak_gamma_sigma) == 4 and max(scan.peak_gamma_sigma) < 6.0
    assert scan.occupancy_id == 1 and scan.profile
    assert lane.occupancy == [True, False]
    assert [h.up for h in lane.health] == [True]


async def test_source_raises_a_gamma_alarm(lane: Lane) -> None:
    lane.sim.begin_occupancy("source", duration_s=4.0)
    scan = await lane.scan()

    assert scan.complete and scan.gamma_alarm and scan.monitor_gamma_alarm
    assert not scan.neutron_alarm and not scan.clean
    assert max(scan.peak_gamma_sigma[:2]) > 50


async def test_nuisance_load_is_still_an_alarm(lane: Lane) -> None:
    lane.sim.begin_occupancy("nuisance", duration_s=4.0)
    scan = await lane.scan()

    assert scan.complete and scan.gamma_alarm and not scan.clean
    # spread over every panel, unlike a point source
    assert min(scan.peak_gamma_sigma) > 6.0


async def test_neutron_source_raises_a_neutron_alarm(lane: Lane) -> None:
    lane.sim.begin_occupancy("neutron_source", duration_s=4.0)
    scan = await lane.scan()

    assert scan.neutron_alarm and scan.monitor_neutron_alarm and not scan.clean
    assert not scan.gamma_alarm


async def test_fault_and_tamper_fail_the_lane_closed_and_recover(lane: Lane) -> None:
    lane.sim.set_fault()
    await lane.until(lambda: not lane.monitor.healthy)
    assert lane.monitor.health_reason == "monitor fault"

    lane.sim.begin_occupancy("clean", duration_s=1.0)
    scan = await lane.scan()
    assert "monitor_fault" in scan.faults and not scan.clean

    lane.sim.set_fault(False)
    lane.sim.set_tamper()
    await lane.until(lambda: lane.monitor.health_reason == "tamper")
    lane.sim.set_tamper(False)
    await lane.until(lambda: lane.monitor.healthy)
    assert [h.up for h in lane.health] == [True, False, True]


async def test_dropped_connection_cuts_the_occupancy_and_recovers(lane: Lane) -> None:
    lane.sim.begin_occupancy("clean", duration_s=20.0)
    await lane.until(lambda: lane.monitor.occupied)
    await lane.sim.stop()

    scan = await lane.scan()
    # the server going away shows as a refused or an unanswered request, either way lost
    assert not scan.complete and not scan.clean
    assert {"connection_lost", "timeout"} & set(scan.faults)
    assert not lane.monitor.healthy and not lane.monitor.occupied
    assert lane.monitor.health_reason.startswith(("connection", "timeout"))

    await lane.sim.start()
    await lane.until(lambda: lane.monitor.healthy)
    assert [h.up for h in lane.health] == [True, False, True]


async def test_missing_heartbeat_fails_closed(lane: Lane) -> None:
    lane.sim.begin_occupancy("clean", duration_s=20.0)
    await lane.until(lambda: lane.monitor.occupied)
    lane.sim.freeze_heartbeat()
    await lane.until(lambda: not lane.monitor.healthy)
    assert "heartbeat missing" in lane.monitor.health_reason
    cut = await lane.scan()
    assert "heartbeat_missing" in cut.faults and not cut.complete

    lane.sim.freeze_heartbeat(False)
    await lane.until(lambda: lane.monitor.healthy)
    # the same truck, seen again after the gap, is not a whole scan either
    rest = await lane.scan()
    assert "joined_mid_occupancy" in rest.faults and not rest.clean


@pytest.mark.parametrize(
    ("fail", "reason"),
    [
        ("set_exception_responses", "exception 4 (device failure)"),
        ("set_stalled", "timeout"),
        ("set_bad_values", "unknown bits"),
    ],
)
async def test_bad_answers_give_a_clear_error_and_a_closed_lane(
    lane: Lane, fail: str, reason: str
) -> None:
    lane.sim.begin_occupancy("clean", duration_s=20.0)
    await lane.until(lambda: lane.monitor.occupied)
    getattr(lane.sim, fail)(True)

    scan = await lane.scan()
    assert not scan.complete and not scan.clean
    assert not lane.monitor.healthy and reason in lane.monitor.health_reason

    getattr(lane.sim, fail)(False)
    await lane.until(lambda: lane.monitor.healthy)


async def test_truck_already_in_the_portal_at_connect_is_not_a_clean_scan() -> None:
    port = free_port()
    sim = SimulatedRpm(port=port, sample_period_s=SAMPLE_S, seed=5)
    await sim.start()
    sim.begin_occupancy("clean", duration_s=3.0)
    await asyncio.sleep(0.1)
    async with running(port, sim) as lane:
        scan = await lane.scan()
    assert "joined_mid_occupancy" in scan.faults and not scan.complete and not scan.clean


async def test_monitor_absent_at_start_is_reported_down_then_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    sim = SimulatedRpm(port=port, sample_period_s=SAMPLE_S, seed=3)
    async with running(port, sim) as lane:
        await lane.until(lambda: bool(lane.health))
        assert not lane.health[0].up and "cannot connect" in lane.health[0].detail
        await asyncio.sleep(0.5)  # several reconnect attempts
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "lane 1" in warnings[0].getMessage()
        await sim.start()
        await lane.until(lambda: lane.monitor.healthy)
        assert [h.up for h in lane.health] == [False, True]


def first_occupancies(source: Path, target: Path, count: int) -> Path:
    lines = source.read_text(encoding="ascii").splitlines()
    ends = [i for i, line in enumerate(lines) if line.startswith("GX")]
    target.write_text("\n".join(lines[: ends[count - 1] + 1]) + "\n")
    return target


async def test_recordings_replayed_into_the_modbus_monitor(
    shared_data: Path, tmp_path: Path
) -> None:
    rpm_dir = shared_data / "field" / "rpm"
    registers = RpmRegisterMap(neutron_channels=4)  # the recordings carry four neutron fields
    port = free_port()
    sim = SimulatedRpm(port=port, registers=registers, sample_period_s=SAMPLE_S)
    await sim.start()
    monitor = open_monitor("1", config(port).model_copy(update={"registers": registers}), 6.0)
    task = asyncio.create_task(monitor.run(), name="test rpm replay")
    try:
        alarmed = first_occupancies(rpm_dir / "S2-C3-NORM2.csv", tmp_path / "hot.csv", 3)
        await sim.replay(alarmed, speed=40.0, max_gap_s=0.2)
        clean = first_occupancies(rpm_dir / "S2-C0-NONE.csv", tmp_path / "clean.csv", 2)
        await sim.replay(clean, speed=40.0, max_gap_s=0.2)
        await asyncio.sleep(0.1)
        scans = [monitor.scans.get_nowait() for _ in range(monitor.scans.qsize())]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sim.stop()

    assert [s.occupancy_id for s in scans] == [109, 110, 111, 17, 18]
    assert all(s.complete and s.monitor_gamma_alarm and s.gamma_alarm for s in scans[:3])
    assert all(s.clean for s in scans[3:]), [s.peak_gamma_sigma for s in scans[3:]]


def test_lane_sigma_overrides_the_site_default() -> None:
    site_default = open_monitor("1", config(1), sigma=6.0)
    lane_own = open_monitor("1", config(1).model_copy(update={"sigma": 4.5}), sigma=6.0)
    assert site_default.sigma == 6.0 and lane_own.sigma == 4.5


async def test_a_cancel_that_meets_an_answer_still_ends_the_monitor() -> None:
    # pymodbus waits for each answer with asyncio.wait_for, which on Python 3.11 returns the
    # answer and drops a cancel that comes in the same turn of the loop; the connection raises
    # it again. The cancel is given at that moment, from the done-callback of pymodbus' future
    # for the answer to the poll in flight.
    port = free_port()
    sim = SimulatedRpm(port=port, sample_period_s=SAMPLE_S, seed=7)
    await sim.start()
    monitor = open_monitor("1", config(port), sigma=6.0)
    assert isinstance(monitor, ModbusRadiationMonitor)
    task = asyncio.create_task(monitor.run(), name="test rpm cancel")
    answered: list[bool] = []

    def cancel_as_the_answer_arrives(answer: asyncio.Future[object]) -> None:
        answered.append(not answer.cancelled())
        task.cancel()

    try:
        await turns_until(lambda: monitor.healthy)
        client = monitor._connection._client
        assert client is not None
        transactions = client.ctx  # pymodbus' transaction manager: it holds that future
        await turns_until(lambda: not transactions.response_future.done())  # a poll in flight
        transactions.response_future.add_done_callback(cancel_as_the_answer_arrives)
        done, _ = await asyncio.wait({task}, timeout=2.0)
        assert answered == [True]
        assert done, "the monitor polled on after a cancel that met an answer"
        assert task.cancelled()
    finally:
        await end_task(task)  # a monitor that ran on is cancelled until it ends
        await sim.stop()


