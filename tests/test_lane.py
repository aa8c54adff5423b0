"""The lane state machine with a real database: arrival, evidence, decision, exit, restart."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from gated import models
from gated.domain import (
    ContainerRead,
    Decision,
    RadiationScan,
    Reason,
    TagRead,
    TransactionState,
)
from gated.lane import LaneDevices, LaneRunner, SafetyRefusal
from gated.ports import PlcInputs
from gated.transactions import TransactionStore
from tests.lane_kit import (
    KnownReads,
    Monitor,
    RecordingBarrier,
    RecordingPrinter,
    StillCameras,
    TableCredentials,
    database,
    seed,
    site_config,
)
from tests.test_tos_helpers import validate

NUMBER = "TGHU7870036"


def clean_scan(alarm: bool = False) -> RadiationScan:
    now = datetime.now(UTC)
    return RadiationScan("1", 7, now, now, True, False, False, alarm, False)


def tag(epc: str = "E200TRUCK1") -> TagRead:
    return TagRead(epc, "lane1-reader", 1, -52.0, datetime.now(UTC))


class Gate:
    def __init__(self, tmp_path: Path, reads: dict[str, str | None], valid: bool = True) -> None:
        self.config = site_config(tmp_path)
        self.engine, self.sessions = database(self.config)
        seed(self.sessions, [NUMBER])
        self.barrier = RecordingBarrier()
        self.printer = RecordingPrinter()
        image = tmp_path / "AH.jpg"
        image.write_bytes(b"jpeg")
        self.devices = LaneDevices(
            barrier=self.barrier, monitor=Monitor(), printer=self.printer,
            cameras=StillCameras({"AH": str(image), "LF": str(image)}),
            credentials=TableCredentials(valid, None if valid else Reason("expired", "expired")),
        )
        self.reads = reads

    def runner(self) -> LaneRunner:
        store = TransactionStore(self.sessions, "demo", "G1")
        return LaneRunner(self.config, self.config.lanes[0], store, self.devices,
                          KnownReads(self.reads))

    def transactions(self) -> list[models.GateTransaction]:
        with self.sessions() as session:
            rows = session.scalars(select(models.GateTransaction)).all()
            for row in rows:
                _ = row.containers
            return list(rows)

    def events(self, topic: str) -> list[dict[str, object]]:
        with self.sessions() as session:
            rows = session.scalars(select(models.OutboxEvent).where(
                models.OutboxEvent.topic == topic).order_by(models.OutboxEvent.id))
            return [json.loads(r.payload) for r in rows]


async def drive_truck(runner: LaneRunner, scan: RadiationScan | None) -> None:
    runner.on_occupancy()
    runner.on_tag(tag())
    if scan is not None:
        runner.on_scan(scan)
    runner.on_plc(PlcInputs(entry_loop=True, exit_loop=False, photo_eye=False))
    runner.on_card(object())
    await asyncio.wait_for(runner.decided.wait(), 10)


async def lane_freed(runner: LaneRunner, within_s: float = 1.0) -> bool:
    """Wait until the lane has no visit (the truck left or was timed out)."""
    for _ in range(int(within_s / 0.01)):
        if runner.visit is None:
            return True
        await asyncio.sleep(0.01)
    return runner.visit is None


async def drive_out(runner: LaneRunner, photo_eye: bool = True) -> bool:
    """The truck let through crosses the exit loop (and the photo-eye) and is gone."""
    runner.on_plc(PlcInputs(entry_loop=False, exit_loop=True, photo_eye=photo_eye))
    runner.on_plc(PlcInputs(entry_loop=False, exit_loop=False, photo_eye=False))
    return await lane_freed(runner)


async def run_lane(runner: LaneRunner) -> asyncio.Task[None]:
    return asyncio.create_task(runner.run(), name="lane-1")


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


async def test_clean_truck_proceeds_and_leaves(tmp_path: Path) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER, "LF": NUMBER})
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        await drive_truck(runner, clean_scan())
        assert runner.last_decision is Decision.PROCEED
        assert "open" in gate.barrier.calls and "light:green" in gate.barrier.calls
        assert [t for t, _ in gate.printer.tickets] == ["GATE PASS", "INSTRUCTIONS"]
        assert any(NUMBER in line for line in gate.printer.tickets[0][1])
        assert any("A1-04-02-1" in line for line in gate.printer.tickets[1][1])
        assert await drive_out(runner)
    finally:
        await stop(task)
        gate.engine.dispose()
    (tx,) = gate.transactions()
    assert tx.state == "closed" and tx.decision == "PROCEED"
    assert tx.gate_pass_number == "G1-000001" and tx.truck_epc == "E200TRUCK1"
    moves = gate.events("moves")
    assert [m["move"]["container_number"] for m in moves] == [NUMBER]
    # every payload the lane queued follows the documented schema (docs/schemas)
    for topic in ("transactions", "moves", "lanes/1/state"):
        for payload in gate.events(topic):
            validate(payload, topic)
    states = [e["state"] for e in gate.events("lanes/1/state")]
    assert states[0] == "identifying" and states[-1] == "idle" and "leaving" in states
    assert [e["kind"] for e in gate.events("transactions")][-1] == "end"
    assert "close" in gate.barrier.calls


async def test_unreadable_container_goes_to_trouble_and_clerk_release(tmp_path: Path) -> None:
    gate = Gate(tmp_path, {"AH": None, "LF": None})
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        await drive_truck(runner, clean_scan())
        assert runner.last_decision is Decision.TROUBLE
        (tx,) = gate.transactions()
        assert {r["code"] for r in tx.reasons} >= {"container_unreadable"}
        assert "open" not in gate.barrier.calls
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        runner.release(tx.id, future)
        await asyncio.wait_for(future, 5)
        assert "open" in gate.barrier.calls
    finally:
        await stop(task)
        gate.engine.dispose()


async def test_alarm_is_inspection_and_clerk_cannot_release(tmp_path: Path) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER})
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        await drive_truck(runner, clean_scan(alarm=True))
        assert runner.last_decision is Decision.INSPECTION
        assert gate.printer.tickets[0][0] == "SECONDARY INSPECTION"
        (tx,) = gate.transactions()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        runner.release(tx.id, future)
        try:
            await asyncio.wait_for(future, 5)
        except SafetyRefusal as refusal:
            assert "radiation alarm" in str(refusal)
        else:
            raise AssertionError("the barrier must not open on a radiation alarm")
        assert "open" not in gate.barrier.calls
    finally:
        await stop(task)
        gate.engine.dispose()


async def test_missing_scan_fails_closed(tmp_path: Path) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER})
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        await drive_truck(runner, None)
        assert runner.last_decision is Decision.TROUBLE
        (tx,) = gate.transactions()
        assert "no_radiation_scan" in {r["code"] for r in tx.reasons}
        assert "open" not in gate.barrier.calls
    finally:
        await stop(task)
        gate.engine.dispose()


async def test_restart_loses_nothing_and_frees_the_lane(tmp_path: Path) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER})
    store = TransactionStore(gate.sessions, "demo", "G1")
    interrupted, _ = store.open("1", "in", datetime.now(UTC))
    waiting, _ = store.open("1", "in", datetime.now(UTC))
    store.set_state(waiting, TransactionState.TROUBLE, Reason("no_appointment", "no appointment"))
    leaving, _ = store.open("1", "in", datetime.now(UTC))
    store.set_state(leaving, TransactionState.LEAVING)
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        await asyncio.sleep(0.05)
        states = {tx.id: tx for tx in gate.transactions()}
        assert states[interrupted].state == "trouble"
        assert "interrupted" in {r["code"] for r in states[interrupted].reasons}
        # the clerk's queue keeps its entry with its own reason; the lane is not held by it
        assert states[waiting].state == "trouble"
        assert [r["code"] for r in states[waiting].reasons] == ["no_appointment"]
        # the truck let through before the restart is watched until it has left
        assert runner.visit is not None and runner.visit.tx_id == leaving
        assert await drive_out(runner, photo_eye=False)
        # and the next truck gets its own decision
        await drive_truck(runner, clean_scan())
        assert runner.last_decision is Decision.PROCEED
    finally:
        await stop(task)
        gate.engine.dispose()
    closed = {tx.id: tx.state for tx in gate.transactions()}
    assert closed[leaving] == "closed" and len(closed) == 4


async def test_inputs_that_fit_no_truck_are_recorded(tmp_path: Path) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER})
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        runner.on_tag(tag("E200STRAY"))
        runner.on_card(object())
        await asyncio.sleep(0.1)
    finally:
        await stop(task)
    with gate.sessions() as session:
        stray = session.scalars(select(models.TagReadRow)).one()
        assert stray.epc == "E200STRAY" and stray.transaction_id is None and not stray.known
        unmatched = session.scalars(select(models.UnmatchedEvent)).one()
        assert unmatched.kind == "credential"
    gate.engine.dispose()


async def test_the_previous_trucks_tag_is_not_the_next_trucks(tmp_path: Path) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER})
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        await drive_truck(runner, clean_scan())
        await drive_out(runner)
        # the first truck's tag is still read as it drives off; the next truck has no tag
        runner.decided.clear()
        runner.on_tag(tag())
        runner.on_occupancy()
        runner.on_tag(tag())
        runner.on_scan(clean_scan())
        runner.on_plc(PlcInputs(entry_loop=True, exit_loop=False, photo_eye=False))
        runner.on_card(object())
        await asyncio.wait_for(runner.decided.wait(), 10)
    finally:
        await stop(task)
        gate.engine.dispose()
    first, second = gate.transactions()
    assert first.truck_epc == "E200TRUCK1"
    assert second.truck_epc is None
    assert "no_truck_tag" in {r["code"] for r in second.reasons}


async def test_a_truck_not_seen_leaving_frees_the_lane(tmp_path: Path) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER})
    gate.config = gate.config.model_copy(update={"lanes": [gate.config.lanes[0].model_copy(
        update={"timeouts": gate.config.lanes[0].timeouts.model_copy(update={"leave_s": 0.3})}
    )]})
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        await drive_truck(runner, clean_scan())
        assert runner.last_decision is Decision.PROCEED
        assert await lane_freed(runner, within_s=2.0)
        assert gate.barrier.calls[-2:] == ["close", "light:red"]
    finally:
        await stop(task)
        gate.engine.dispose()
    (tx,) = gate.transactions()
    assert tx.state == "closed" and "leave_timeout" in {r["code"] for r in tx.reasons}


class CrashingOcr(KnownReads):
    """The OCR workers themselves fail (a worker killed twice on one picture)."""

    def read(self, path: str, camera: str | None) -> ContainerRead:
        raise BrokenProcessPool("a process in the process pool was terminated abruptly")


async def test_a_failure_of_the_ocr_workers_is_decided_not_waited_out(tmp_path: Path) -> None:
    gate = Gate(tmp_path, {})
    store = TransactionStore(gate.sessions, "demo", "G1")
    runner = LaneRunner(gate.config, gate.config.lanes[0], store, gate.devices, CrashingOcr({}))
    task = await run_lane(runner)
    try:
        await drive_truck(runner, clean_scan())
        assert runner.last_decision is Decision.TROUBLE
        (tx,) = gate.transactions()
        codes = {r["code"] for r in tx.reasons}
        # decided on the failed reads, not as pictures still waiting for their OCR
        assert "ocr_late" not in codes and codes & {"container_unknown", "container_unreadable"}
        # each picture is kept with the workers' failure for the clerk, who can read it again
        with gate.sessions() as session:
            errors = session.scalars(select(models.ContainerReadRow.error)).all()
        assert len(errors) == 2
        assert all((e or "").startswith("OCR failed: BrokenProcessPool") for e in errors)
        assert "open" not in gate.barrier.calls
    finally:
        await stop(task)
        gate.engine.dispose()


async def test_the_drivers_credential_check_is_published(tmp_path: Path) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER, "LF": NUMBER})
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        await drive_truck(runner, clean_scan())
        lane = gate.config.lanes[0].id
        (event,) = gate.events(f"lanes/{lane}/credential")
        validate(event, f"lanes/{lane}/credential")
        assert event["kind"] == "credential_checked" and event["valid"] is True
    finally:
        await stop(task)
        gate.engine.dispose()
