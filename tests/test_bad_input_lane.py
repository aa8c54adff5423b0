"""The lane fed in odd orders: card before truck, scans late, twice or for the wrong truck,
an exit without an entry, a restart mid-visit, shuffled inputs. Every input is recorded and
no barrier opens without this truck's own clean scan and a valid credential."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from gated import models
from gated.decision import DecisionResult, decide
from gated.domain import Decision, Reason, WeightReading
from gated.lane import LaneRunner
from gated.ports import PlcInputs
from gated.transactions import TransactionStore
from tests.test_decision import clean as clean_evidence
from tests.test_lane import NUMBER, Gate, clean_scan, run_lane, tag

ENTRY = PlcInputs(entry_loop=True, exit_loop=False, photo_eye=False)
EMPTY = PlcInputs(entry_loop=False, exit_loop=False, photo_eye=False)
EXIT = PlcInputs(entry_loop=False, exit_loop=True, photo_eye=True)
SECOND_TRUCK = "E200TRUCK2"


def _second_truck(gate: Gate) -> None:
    with gate.sessions.begin() as session:
        company = session.scalars(select(models.TruckingCompany)).one()
        session.add(models.Truck(epc=SECOND_TRUCK, plate="CD-456", company=company))


async def _decision(runner: LaneRunner) -> Decision | None:
    await asyncio.wait_for(runner.decided.wait(), 10)
    return runner.last_decision


async def _settle(runner: LaneRunner) -> None:
    """Let the lane work through what is in its inbox."""
    for _ in range(50):
        await asyncio.sleep(0.01)
        if runner._inbox.empty():  # noqa: SLF001 - the lane has no public idle signal
            return


async def stop(task: asyncio.Task[None]) -> bool:
    """Cancel the lane; True when one cancel was enough. Python 3.11's wait_for can swallow a
    cancel that meets an input (see the xfail test below): cancel again rather than hang."""
    for attempt in range(20):
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=1.0)
        if done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
            return attempt == 0
    raise AssertionError("the lane task does not stop")


def _unmatched(gate: Gate) -> list[str]:
    with gate.sessions() as session:
        return [row.kind for row in session.scalars(select(models.UnmatchedEvent))]


async def test_card_before_the_truck_is_recorded_and_never_lets_it_through(
    tmp_path: Path,
) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER, "LF": NUMBER})
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        runner.on_card(object())
        await _settle(runner)
        runner.on_occupancy()
        runner.on_tag(tag())
        runner.on_scan(clean_scan())
        runner.on_plc(ENTRY)
        assert await _decision(runner) is Decision.TROUBLE
    finally:
        await stop(task)
        gate.engine.dispose()
    assert "credential" in _unmatched(gate)
    (tx,) = gate.transactions()
    assert "no_credential" in {r["code"] for r in tx.reasons}
    assert "open" not in gate.barrier.calls


@pytest.mark.parametrize(
    "scan",
    [
        replace(clean_scan(), complete=False),
        replace(clean_scan(), faults=("monitor_fault",)),
        replace(clean_scan(), monitor_neutron_alarm=True),
        replace(clean_scan(), ended_at=None, complete=False),
    ],
    ids=["incomplete", "faulted", "neutron-alarm-from-the-monitor", "never-ended"],
)
async def test_a_scan_that_is_not_clean_never_proceeds(tmp_path: Path, scan: object) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER, "LF": NUMBER})
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        runner.on_occupancy()
        runner.on_tag(tag())
        runner.on_scan(scan)  # type: ignore[arg-type]
        runner.on_plc(ENTRY)
        runner.on_card(object())
        assert await _decision(runner) is not Decision.PROCEED
        (tx,) = gate.transactions()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        runner.release(tx.id, future)
        with pytest.raises(Exception, match="scan|radiation|alarm"):
            await asyncio.wait_for(future, 5)
    finally:
        await stop(task)
        gate.engine.dispose()
    assert "open" not in gate.barrier.calls


async def test_clerk_cannot_release_a_truck_without_a_valid_credential(tmp_path: Path) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER, "LF": NUMBER}, valid=False)
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        runner.on_occupancy()
        runner.on_tag(tag())
        runner.on_scan(clean_scan())
        runner.on_plc(ENTRY)
        runner.on_card(object())
        assert await _decision(runner) is Decision.TROUBLE
        (tx,) = gate.transactions()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        runner.release(tx.id, future)
        with pytest.raises(Exception, match="credential"):
            await asyncio.wait_for(future, 5)
        runner.release(tx.id + 99, asyncio.get_running_loop().create_future())
        await _settle(runner)
    finally:
        await stop(task)
        gate.engine.dispose()
    assert "open" not in gate.barrier.calls


async def test_an_alarm_scan_during_the_visit_is_never_ignored(tmp_path: Path) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER, "LF": NUMBER})
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        runner.on_occupancy()
        runner.on_scan(clean_scan())
        runner.on_scan(clean_scan(alarm=True))
        runner.on_tag(tag())
        runner.on_plc(ENTRY)
        runner.on_card(object())
        decision = await _decision(runner)
    finally:
        await stop(task)
        gate.engine.dispose()
    assert "open" not in gate.barrier.calls
    assert decision is not Decision.PROCEED


async def test_the_previous_trucks_late_scan_is_not_the_next_trucks(tmp_path: Path) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER, "LF": NUMBER})
    _second_truck(gate)
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        runner.on_occupancy()
        runner.on_tag(tag())
        runner.on_plc(ENTRY)
        runner.on_card(object())
        assert await _decision(runner) is Decision.TROUBLE  # no scan in time
        runner.on_scan(clean_scan())  # truck A's scan, late
        runner.on_plc(EMPTY)  # truck A backs out
        await _settle(runner)
        assert runner.visit is None
        runner.decided.clear()
        runner.on_plc(ENTRY)  # truck B
        runner.on_tag(tag(SECOND_TRUCK))
        runner.on_scan(clean_scan(alarm=True))  # truck B's own scan
        runner.on_card(object())
        decision = await _decision(runner)
    finally:
        await stop(task)
        gate.engine.dispose()
    assert decision is not Decision.PROCEED
    assert "open" not in gate.barrier.calls


async def test_exit_loop_without_entry_is_recorded(tmp_path: Path) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER})
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        runner.on_plc(EXIT)
        runner.on_plc(EMPTY)
        await _settle(runner)
    finally:
        await stop(task)
        gate.engine.dispose()
    assert gate.transactions() == []
    assert _unmatched(gate), "an exit without an entry left no trace"


async def test_restart_between_decision_and_barrier_does_not_wedge_the_lane(
    tmp_path: Path,
) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER, "LF": NUMBER})
    store = TransactionStore(gate.sessions, "demo", "G1")
    tx_id, _ = store.open("1", "in", datetime.now(UTC))
    proceed = DecisionResult(Decision.PROCEED, (Reason("all", "all checks", blocking=False),))
    store.decide(tx_id, proceed, datetime.now(UTC), (), None)
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        await _settle(runner)
        runner.on_plc(EMPTY)
        runner.on_plc(ENTRY)  # the next truck
        await _settle(runner)
    finally:
        await stop(task)
        gate.engine.dispose()
    states = [tx.state for tx in gate.transactions()]
    assert states[0] != "proceed", "left in 'proceed' after the restart"
    assert len(states) == 2, "the next truck got no transaction"


async def test_restart_mid_identification_is_recorded_as_interrupted(tmp_path: Path) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER})
    first = gate.runner()
    task = await run_lane(first)
    first.on_occupancy()
    first.on_tag(tag())
    for _ in range(100):
        await asyncio.sleep(0.01)
        if first.visit is not None and first.visit.images_done and first._inbox.empty():  # noqa: SLF001
            break
    await stop(task)  # the daemon stops before the lane decides
    second = gate.runner()
    task = await run_lane(second)
    try:
        await _settle(second)
    finally:
        await stop(task)
        gate.engine.dispose()
    (tx,) = gate.transactions()
    assert tx.state == "trouble"
    assert "interrupted" in {r["code"] for r in tx.reasons}
    assert "open" not in gate.barrier.calls


def _inputs(rng: random.Random) -> list[tuple[str, object]]:
    choices: list[tuple[str, object]] = [
        ("occupancy", None),
        ("scan", clean_scan()),
        ("scan", clean_scan(alarm=True)),
        ("scan", replace(clean_scan(), complete=False)),
        ("tag", None),
        ("card", None),
        ("plc", ENTRY),
        ("plc", EMPTY),
        ("plc", EXIT),
        ("sleep", None),
    ]
    return [rng.choice(choices) for _ in range(rng.randint(3, 14))]


async def test_shuffled_inputs_never_open_without_a_clean_scan_and_a_credential(
    tmp_path: Path,
) -> None:
    """Whatever the order, each barrier opening belongs to a transaction that holds a clean
    complete scan and a valid credential of its own, and nothing is left unrecorded."""
    rng = random.Random(2026)
    for round_ in range(6):
        folder = tmp_path / f"round{round_}"
        folder.mkdir()
        valid = rng.random() < 0.7
        gate = Gate(folder, {"AH": NUMBER, "LF": NUMBER}, valid=valid)
        runner = gate.runner()
        task = await run_lane(runner)
        sequence = _inputs(rng)
        try:
            for kind, value in sequence:
                if kind == "occupancy":
                    runner.on_occupancy()
                elif kind == "scan":
                    runner.on_scan(value)  # type: ignore[arg-type]
                elif kind == "tag":
                    runner.on_tag(tag())
                elif kind == "card":
                    runner.on_card(object())
                elif kind == "plc":
                    runner.on_plc(value)  # type: ignore[arg-type]
                else:
                    await asyncio.sleep(0.2)
            await asyncio.sleep(0.6)  # past every lane timeout (0.5 s in the kit)
            await _settle(runner)
        finally:
            await stop(task)
        try:
            opened = gate.barrier.calls.count("open")
            with gate.sessions() as session:
                txs = list(session.scalars(select(models.GateTransaction)))
                passed = [tx for tx in txs if tx.decision == "PROCEED"]
                for tx in passed:
                    scans = list(tx.scans)
                    assert scans, f"{sequence}: PROCEED without a scan"
                    assert all(s.complete and not s.faults for s in scans), sequence
                    assert not any(
                        s.gamma_alarm or s.neutron_alarm or s.monitor_gamma_alarm
                        or s.monitor_neutron_alarm for s in scans
                    ), sequence
                    assert any(c.valid for c in tx.credential_checks), sequence
                assert opened <= len(passed), f"{sequence}: barrier opened {opened} times"
                if not valid:
                    assert opened == 0, sequence
                scan_inputs = sum(1 for kind, _ in sequence if kind == "scan")
                tag_inputs = sum(1 for kind, _ in sequence if kind == "tag")
                scan_rows = session.scalars(select(models.RadiationScanRow)).all()
                tag_rows = session.scalars(select(models.TagReadRow)).all()
                assert len(scan_rows) >= scan_inputs, f"{sequence}: a scan was not recorded"
                assert bool(tag_rows) == bool(tag_inputs), f"{sequence}: a tag was lost"
        finally:
            gate.engine.dispose()


def test_decision_refuses_a_weight_that_is_not_a_number() -> None:
    weight = WeightReading(float("nan"), True, datetime.now(UTC))
    evidence = clean_evidence(
        weight=weight, scale_configured=True, max_gross_kg=67000.0, min_gross_kg=2000.0
    )
    result = decide(evidence)
    assert result.decision is not Decision.PROCEED


async def test_lane_stops_on_the_first_cancel_even_when_an_input_arrives(
    tmp_path: Path,
) -> None:
    gate = Gate(tmp_path, {"AH": NUMBER})
    runner = gate.runner()
    task = await run_lane(runner)
    try:
        runner.on_occupancy()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if runner.visit is not None and runner.visit.images_done:
                break
        runner.on_tag(tag())  # an input and the stop in the same turn of the loop
        first_cancel_enough = await stop(task)
    finally:
        if not task.done():
            await stop(task)
        gate.engine.dispose()
    assert first_cancel_enough, "the lane ignored its cancellation"


def test_long_epc_is_kept_on_postgresql(postgres: object, tmp_path: Path) -> None:
    from gated.db import make_engine, session_factory, upgrade
    from gated.domain import TagRead

    url = postgres.create_database(f"t_{tmp_path.name.lower().replace('-', '_')}"[:60])  # type: ignore[attr-defined]
    engine = make_engine(url)
    try:
        upgrade(engine)
        sessions = session_factory(engine)
        store = TransactionStore(sessions, "demo", "G1")
        tx_id, _ = store.open("1", "in", datetime.now(UTC))
        epc = "E2" * 48  # a 384-bit EPC, as LLRP readers report them
        store.add_tag(tx_id, "1", TagRead(epc, "portal", 1, -50.0, datetime.now(UTC)), False)
        with sessions() as session:
            assert session.get_one(models.GateTransaction, tx_id).truck_epc == epc
            assert session.scalars(select(models.TagReadRow.epc)).all() == [epc]
    finally:
        engine.dispose()
