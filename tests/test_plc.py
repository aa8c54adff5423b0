"""The gate PLC driver against the simulated PLC, over real Modbus TCP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from drivers.plc import GatePlc, PlcChange, PlcError
from drivers.rpm import open_monitor
from gated.config import PlcConfig, PlcRegisterMap, RpmConfig
from gated.domain import DeviceHealth
from gated.ports import BarrierPort, MonitorPort
from hwsim.plc import SimulatedPlc
from tests.servers import free_port
from tests.tasks import end_task, turns_until


@dataclass
class Lane:
    plc: GatePlc
    sim: SimulatedPlc
    health: list[DeviceHealth] = field(default_factory=list)
    task: asyncio.Task[None] | None = None  # the driver's run()

    async def until(self, condition: Callable[[], bool], within: float = 5.0) -> None:
        """Wait for a state the driver reaches by itself."""
        for _ in range(int(within / 0.01)):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"condition not reached within {within} s")

    async def change(self, name: str, within: float = 5.0) -> PlcChange:
        async with asyncio.timeout(within):
            while True:
                change = await self.plc.changes.get()
                if change.name == name:
                    return change


@contextlib.asynccontextmanager
async def running(port: int, sim: SimulatedPlc) -> AsyncIterator[Lane]:
    config = PlcConfig(
        host="127.0.0.1", port=port, poll_interval_s=0.01, timeout_s=0.5,
        heartbeat_timeout_s=1.0, backoff_cap_s=0.2, barrier_travel_timeout_s=3.0,
    )
    health: list[DeviceHealth] = []
    plc = GatePlc("1", config, on_health=health.append)
    task = asyncio.create_task(plc.run(), name="test plc")
    try:
        yield Lane(plc, sim, health, task)
    finally:
        await end_task(task)
        await sim.stop()


@pytest.fixture
async def lane() -> AsyncIterator[Lane]:
    port = free_port()
    sim = SimulatedPlc(port=port, scan_s=0.01, barrier_travel_s=0.2)
    await sim.start()
    async with running(port, sim) as lane:
        await lane.until(lambda: lane.plc.healthy)
        while not lane.plc.changes.empty():  # the first poll's state is not a change
            lane.plc.changes.get_nowait()
        yield lane


async def test_loops_and_photo_eye_are_reported_as_changes(lane: Lane) -> None:
    lane.sim.set_entry_loop(True)
    change = await lane.change("entry_loop")
    assert change.value is True and lane.plc.state.entry_loop
    lane.sim.set_photo_eye(True)
    assert (await lane.change("photo_eye")).value is True
    lane.sim.set_entry_loop(False)
    assert (await lane.change("entry_loop")).value is False


async def test_barrier_opens_and_closes_taking_its_time(lane: Lane) -> None:
    assert lane.plc.state.barrier == "closed"
    await lane.plc.open_barrier()
    assert (await lane.change("barrier")).value == "opening"
    assert (await lane.change("barrier")).value == "open"
    assert lane.plc.state.barrier_position == 100

    await lane.plc.close_barrier()
    assert lane.plc.interlock_held is None
    assert (await lane.change("barrier")).value == "closing"
    assert (await lane.change("barrier")).value == "closed"
    assert lane.sim.commands == ["open", "close"]


@pytest.mark.parametrize("blocker", ["set_photo_eye", "set_exit_loop"])
async def test_interlock_keeps_the_barrier_up_for_a_truck(lane: Lane, blocker: str) -> None:
    await lane.plc.open_barrier()
    await lane.until(lambda: lane.plc.state.barrier == "open")
    getattr(lane.sim, blocker)(True)
    await lane.until(lambda: lane.plc.state.photo_eye or lane.plc.state.exit_loop)

    await lane.plc.close_barrier()
    assert lane.plc.interlock_held in ("photo-eye blocked", "exit loop occupied")
    await lane.until(lambda: lane.sim.commands == ["open", "open"])
    assert lane.sim.barrier == "open"


async def test_truck_under_a_closing_barrier_sends_it_back_up(lane: Lane) -> None:
    lane.sim.barrier_travel_s = 1.0
    await lane.plc.open_barrier()
    await lane.until(lambda: lane.plc.state.barrier == "open")
    await lane.plc.close_barrier()
    await lane.until(lambda: lane.plc.state.barrier == "closing")

    lane.sim.set_photo_eye(True)
    await lane.until(lambda: lane.sim.barrier == "open")
    assert lane.sim.commands[-2:] == ["close", "open"]


async def test_traffic_light(lane: Lane) -> None:
    await lane.plc.set_light("green")
    await lane.until(lambda: lane.sim.light == "green")
    await lane.plc.set_light("red")
    await lane.until(lambda: lane.sim.light == "red")
    coils = await lane.sim.coils()
    assert coils["red"] and not coils["green"]
    assert not (coils["open"] or coils["close"] or coils["stop"])  # pulses were taken
    with pytest.raises(ValueError):
        await lane.plc.set_light("blue")


async def test_lost_plc_fails_closed_commands_refused_then_recovers(lane: Lane) -> None:
    await lane.sim.stop()
    await lane.until(lambda: not lane.plc.healthy)
    assert lane.plc.problem is not None
    with pytest.raises(PlcError):
        await lane.plc.open_barrier()
    await lane.sim.start()
    await lane.until(lambda: lane.plc.healthy)
    assert [h.up for h in lane.health] == [True, False, True]


@pytest.mark.parametrize(
    ("fail", "reason"),
    [
        ("set_exception_responses", "exception 4 (device failure)"),
        ("set_stalled", "timeout"),
        ("set_bad_values", "position 250"),
        ("set_barrier_fault", "barrier fault (status 99)"),
        ("freeze_heartbeat", "heartbeat missing"),
    ],
)
async def test_bad_answers_give_a_clear_error_and_a_closed_lane(
    lane: Lane, fail: str, reason: str
) -> None:
    getattr(lane.sim, fail)(True)
    await lane.until(lambda: not lane.plc.healthy)
    assert reason in lane.plc.health_reason

    getattr(lane.sim, fail)(False)
    await lane.until(lambda: lane.plc.healthy)
    assert [h.up for h in lane.health] == [True, False, True]


async def test_exception_on_a_command_is_a_clear_error(lane: Lane) -> None:
    lane.sim.set_refuse_writes()
    with pytest.raises(PlcError, match="exception 4 \\(device failure\\)"):
        await lane.plc.open_barrier()
    with pytest.raises(PlcError, match="device failure"):
        await lane.plc.set_light("green")
    assert lane.sim.commands == []


async def test_a_cancel_that_meets_an_answer_still_ends_the_driver(lane: Lane) -> None:
    # pymodbus waits for each answer with asyncio.wait_for, which on Python 3.11 returns the
    # answer and drops a cancel that comes in the same turn of the loop: the driver polled on
    # and whoever awaited it after cancelling hung. The cancel is given here at that moment,
    # from the done-callback of pymodbus' future for the answer to the poll in flight.
    assert lane.task is not None
    task = lane.task
    client = lane.plc._connection._client
    assert client is not None
    transactions = client.ctx  # pymodbus' transaction manager: it holds that future
    # between polls: wait, turn by turn of the loop, for the next request to be sent
    await turns_until(lambda: not transactions.response_future.done())
    answered: list[bool] = []

    def cancel_as_the_answer_arrives(answer: asyncio.Future[object]) -> None:
        answered.append(not answer.cancelled())
        task.cancel()

    transactions.response_future.add_done_callback(cancel_as_the_answer_arrives)
    done, _ = await asyncio.wait({task}, timeout=2.0)  # the fixture ends a driver that runs on
    assert answered == [True]
    assert done, "the driver polled on after a cancel that met an answer"
    assert task.cancelled()


async def test_a_cancel_at_any_point_of_the_poll_cycle_ends_the_driver() -> None:
    port = free_port()
    sim = SimulatedPlc(port=port, scan_s=0.01)
    await sim.start()
    config = PlcConfig(host="127.0.0.1", port=port, poll_interval_s=0.001, timeout_s=0.5)
    try:
        for attempt in range(120):
            plc = GatePlc("1", config)
            task = asyncio.create_task(plc.run(), name=f"test plc cancel {attempt}")
            if attempt % 2:  # odd: while polling, even: while connecting
                await turns_until(lambda: plc.healthy)  # noqa: B023 (awaited at once)
            for _ in range(attempt // 2 % 30):  # a different point of the cycle each time
                await asyncio.sleep(0)
            assert await end_task(task), f"attempt {attempt}: the driver ran on after a cancel"
    finally:
        await sim.stop()


async def test_simulator_stop_closes_the_server_when_it_is_cancelled_itself() -> None:
    port = free_port()
    sim = SimulatedPlc(port=port, scan_s=0.01)
    await sim.start()
    stopping = asyncio.create_task(sim.stop(), name="test plc sim stop")
    await asyncio.sleep(0)  # stop() is now waiting for the cycle to end
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert not sim.running


def test_drivers_fit_the_lane_ports() -> None:
    # checked by mypy: the lane holds the drivers through these protocols
    plc: BarrierPort = GatePlc("1", PlcConfig(host="127.0.0.1", port=1))
    monitor: MonitorPort = open_monitor(
        "1", RpmConfig(transport="modbus", host="127.0.0.1", port=1), sigma=6.0
    )
    assert plc.problem == monitor.problem == "not connected yet"


async def test_container_presence_sensor_when_fitted() -> None:
    registers = PlcRegisterMap(container_present=3)
    port = free_port()
    sim = SimulatedPlc(port=port, scan_s=0.01, registers=registers)
    await sim.start()
    config = PlcConfig(host="127.0.0.1", port=port, poll_interval_s=0.01, registers=registers)
    plc = GatePlc("1", config)
    task = asyncio.create_task(plc.run(), name="test plc presence")
    try:
        lane = Lane(plc, sim)
        await lane.until(lambda: plc.healthy)
        assert plc.state.container_present is False
        while not plc.changes.empty():  # the first poll's state is not a change
            plc.changes.get_nowait()
        sim.set_container_present(True)
        assert (await lane.change("container_present")).value is True

        # a lane whose map has no sensor reads "unknown", never "no container"
        unfitted = PlcConfig(
            host="127.0.0.1", port=port, poll_interval_s=0.01,
            registers=registers.model_copy(update={"container_present": None}),
        )
        other = GatePlc("1", unfitted)
        other_task = asyncio.create_task(other.run(), name="test plc without presence")
        try:
            await lane.until(lambda: other.healthy)
            assert other.state.container_present is None
        finally:
            other_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await other_task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sim.stop()
