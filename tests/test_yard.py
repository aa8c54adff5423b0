"""Yard geometry, lifts and yard moves, down to a machine on simulated devices and a database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from gated import models
from gated.config import LlrpReaderConfig, MachineConfig, YardBlock, YardConfig
from gated.db import make_engine, session_factory, upgrade
from gated.domain import DeviceHealth, Move, TagRead
from gated.yard import (
    Lift,
    LiftTracker,
    PositionFix,
    YardGeometry,
    YardMoveService,
    YardSlot,
    container_from_epc,
    parse_position_line,
    record_yard_move,
    yard_problems,
)
from hwsim.llrp import SimulatedReader
from hwsim.position import PositionUnit, perform_lift
from tests.llrp_helpers import Recorder, supervised
from tests.servers import free_port

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
CONTAINER = "TGHU7870036"
CONTAINER_EPC = CONTAINER.encode().hex().upper() + "00"  # ASCII-coded container tag, 96 bits
TRUCK_EPC = "3005FB63AC1F3841EC880467"
MACHINE_EPC = "E2000000000000000000AAAA"
BLOCKS = [
    YardBlock(name="A1", origin_x_m=0.0, origin_y_m=0.0, bays=10, rows=6, tiers=5),
    YardBlock(name="B2", origin_x_m=100.0, origin_y_m=0.0, bays=4, rows=4, tiers=3),
]
GEOMETRY = YardGeometry(BLOCKS)
FROM_SLOT = YardSlot("A1", 3, 2, 1)
TO_SLOT = YardSlot("A1", 7, 5, 2)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'yard.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def fix(slot: YardSlot | None, locked: bool, seconds: float, xy: tuple[float, float] = (0, 0)
        ) -> PositionFix:
    x, y, z = GEOMETRY.position_of(slot) if slot else (*xy, 1.5)
    return PositionFix(x, y, z, locked, T0 + timedelta(seconds=seconds))


def read(epc: str, seconds: float, rssi: float = -50.0) -> TagRead:
    return TagRead(epc, "TP-07/rfid", 1, rssi, T0 + timedelta(seconds=seconds))


# --- geometry and lines -----------------------------------------------------------------------


def test_slots_from_positions() -> None:
    assert GEOMETRY.slot_at(0.1, 0.1, 0.0) == YardSlot("A1", 1, 1, 1)
    assert GEOMETRY.slot_at(6.6, 2.9, 2.8) == YardSlot("A1", 2, 2, 2)
    assert GEOMETRY.slot_at(64.9, 16.7, 11.6) == YardSlot("A1", 10, 6, 5)
    assert GEOMETRY.slot_at(65.1, 1.0, 0.0) is None  # between the blocks
    assert GEOMETRY.slot_at(101.0, 1.0, 0.0) == YardSlot("B2", 1, 1, 1)
    assert GEOMETRY.slot_at(101.0, 1.0, 9.0) is None  # above block B2's three tiers
    assert GEOMETRY.slot_at(-0.1, 1.0, 0.0) is None
    for slot in (FROM_SLOT, TO_SLOT, YardSlot("B2", 4, 4, 3)):
        assert GEOMETRY.slot_at(*GEOMETRY.position_of(slot)) == slot
    assert str(TO_SLOT) == "A1-07-05-2"


def test_yard_configuration_problems() -> None:
    reader = LlrpReaderConfig(host="127.0.0.1")
    fields = {
        "blocks": [*BLOCKS, YardBlock(name="A1", origin_x_m=60.0, origin_y_m=10.0, bays=2,
                                      rows=2)],
        "machines": [
            MachineConfig(id="TP-07", kind="top_pick", reader=reader, position_url="tcp://h:1"),
            MachineConfig(id="TP-07", kind="rtg", reader=reader, position_url="http://h:1"),
            MachineConfig(id="RS-1", kind="rtg", reader=reader, position_url="tcp://h:port"),
        ],
    }
    # the configuration model refuses such a yard; the checks themselves are tested here
    with pytest.raises(ValueError, match="defined more than once"):
        YardConfig(**fields)
    problems = yard_problems(YardConfig.model_construct(**fields))
    assert problems == [
        "yard block 'A1' is defined more than once",
        "yard blocks 'A1' and 'A1' overlap",
        "yard machine 'TP-07' is defined more than once",
        "yard machine 'TP-07': position_url 'http://h:1' is not tcp://host:port",
        "yard machine 'RS-1': position_url 'tcp://h:port' is not tcp://host:port",
    ]
    assert yard_problems(YardConfig(blocks=BLOCKS)) == []


def test_position_lines() -> None:
    parsed = parse_position_line(b'{"x": 1, "y": 2.5, "z": 0, "spreader": "locked"}\n', T0)
    assert parsed == PositionFix(1.0, 2.5, 0.0, True, T0)
    for bad in (b"{not json", b"[1, 2]", b'{"x": 1, "y": 2, "spreader": "locked"}',
                b'{"x": "a", "y": 2, "z": 0, "spreader": "locked"}',
                b'{"x": 1, "y": 2, "z": NaN, "spreader": "locked"}',
                b'{"x": 1, "y": 2, "z": 0, "spreader": "half"}'):
        with pytest.raises(ValueError):
            parse_position_line(bad, T0)


def test_container_tags() -> None:
    assert container_from_epc(CONTAINER_EPC) == CONTAINER
    assert container_from_epc(TRUCK_EPC) is None
    assert container_from_epc(b"TGHU7870037".hex() + "00") is None  # check digit


# --- the tracker (pure, clock moved by hand) --------------------------------------------------


def test_tracker_makes_a_lift() -> None:
    tracker = LiftTracker("TP-07", GEOMETRY, ignore_epcs=[MACHINE_EPC], lead_s=2.0)
    tracker.on_read(read(TRUCK_EPC, 0.0))  # long before the lock: another truck passing
    assert tracker.on_fix(fix(FROM_SLOT, False, 5.0)) is None
    tracker.on_read(read(CONTAINER_EPC, 9.5, rssi=-40))  # the spreader comes down onto it
    tracker.on_read(read(MACHINE_EPC, 9.6, rssi=-20))  # the machine's own tag
    assert tracker.on_fix(fix(FROM_SLOT, True, 10.0)) is None
    assert tracker.lifting
    tracker.on_read(read(CONTAINER_EPC, 11.0, rssi=-38))
    tracker.on_read(read(TRUCK_EPC, 12.0, rssi=-70))
    assert tracker.on_fix(fix(TO_SLOT, True, 20.0)) is None
    lift = tracker.on_fix(fix(TO_SLOT, False, 25.0))
    assert lift is not None and not tracker.lifting
    assert (lift.from_slot, lift.to_slot, lift.machine) == (FROM_SLOT, TO_SLOT, "TP-07")
    assert [t.epc for t in lift.tags] == [CONTAINER_EPC, TRUCK_EPC]
    assert lift.tags[0].rssi == -38 and lift.tags[0].count == 2
    assert tracker.on_fix(fix(TO_SLOT, False, 26.0)) is None
    assert lift.position_gap_s == 10.0  # fixes at 10, 20 and 25 s while locked


def test_position_gap_is_noted_on_the_move(sessions: sessionmaker[Session]) -> None:
    tracker = LiftTracker("TP-07", GEOMETRY)
    tracker.on_fix(fix(FROM_SLOT, True, 0.0))
    tracker.on_read(read(CONTAINER_EPC, 0.5))
    done = tracker.on_fix(fix(TO_SLOT, False, 40.0))  # the unit was away for 40 s
    assert done is not None and done.position_gap_s == 40.0
    with sessions.begin() as session:
        assert record_yard_move(session, site="T1", lift=done) is not None
    rows, _ = moves_and_events(sessions)
    assert "silent for 40 s" in rows[0].details["notes"][0]


# --- moves in the database --------------------------------------------------------------------


def lift(tags: list[str], from_slot: YardSlot | None, to_slot: YardSlot | None) -> Lift:
    tracker = LiftTracker("TP-07", GEOMETRY)
    tracker.on_fix(fix(from_slot, False, 0.0, xy=(80.0, 30.0)))
    tracker.on_fix(fix(from_slot, True, 1.0, xy=(80.0, 30.0)))
    for index, epc in enumerate(tags):
        tracker.on_read(read(epc, 2.0 + index, rssi=-45 - index))
    done = tracker.on_fix(fix(to_slot, False, 9.0, xy=(80.0, 30.0)))
    assert done is not None
    return done


def moves_and_events(sessions: sessionmaker[Session]) -> tuple[list[models.Move], list[dict]]:
    with sessions() as session:
        moves = list(session.scalars(select(models.Move).order_by(models.Move.id)))
        events = [json.loads(e.payload) for e in session.scalars(
            select(models.OutboxEvent).where(models.OutboxEvent.topic == "moves"))]
    return moves, events


def test_move_of_a_tagged_container(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        move = record_yard_move(session, site="T1", lift=lift([CONTAINER_EPC], FROM_SLOT, TO_SLOT))
    assert move is not None
    assert move == Move(kind=move.kind, container_number=CONTAINER, from_location="A1-03-02-1",
                        to_location="A1-07-05-2", at=T0 + timedelta(seconds=9), machine="TP-07")
    rows, events = moves_and_events(sessions)
    assert [(r.kind, r.container_number, r.machine) for r in rows] == [("yard", CONTAINER, "TP-07")]
    assert events[0]["event_id"] == rows[0].event_id
    assert events[0]["move"]["to_location"] == "A1-07-05-2"
    assert events[0]["move"]["container_number"] == CONTAINER


def test_lift_off_a_truck_then_out_of_the_slot_by_history(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        company = models.TruckingCompany(code="ACME", name="Acme Haulage")
        session.add(models.Truck(epc=TRUCK_EPC, plate="KX-101", company=company))
        visit = models.GateTransaction(
            lane="1", direction="in", state="closed", truck_epc=TRUCK_EPC,
            arrived_at=T0 - timedelta(minutes=20),
        )
        visit.containers.append(models.TransactionContainer(
            position=0, container_number="MSCU1234565", size_type="42G1"))
        session.add(visit)
    with sessions.begin() as session:  # off the truck, which stands outside the blocks
        first = record_yard_move(session, site="T1", lift=lift([TRUCK_EPC], None, FROM_SLOT))
    assert first is not None
    assert (first.container_number, first.from_location, first.to_location, first.truck) == (
        "MSCU1234565", "truck KX-101", "A1-03-02-1", TRUCK_EPC)
    with sessions.begin() as session:  # later, from that slot to another, no tag answering
        second = record_yard_move(session, site="T1", lift=lift([], FROM_SLOT, TO_SLOT))
    assert second is not None
    assert (second.container_number, second.from_location, second.to_location) == (
        "MSCU1234565", "A1-03-02-1", "A1-07-05-2")
    rows, events = moves_and_events(sessions)
    assert [r.details["source"] for r in rows] == ["truck_tag", "yard_inventory"]
    assert len(events) == 2


def test_unresolved_lift_is_kept_with_its_unknown_tag(sessions: sessionmaker[Session]) -> None:
    stranger = "ABCDEF0123456789ABCDEF01"
    with sessions.begin() as session:
        unresolved = lift([stranger], TO_SLOT, FROM_SLOT)
        assert record_yard_move(session, site="T1", lift=unresolved) is None
    with sessions() as session:
        assert session.scalars(select(models.Move)).first() is None
        unmatched = session.scalars(select(models.UnmatchedEvent)).one()
        tag_row = session.scalars(select(models.TagReadRow)).one()
    assert unmatched.kind == "yard_lift" and unmatched.payload["tags"] == [stranger]
    assert (tag_row.epc, tag_row.known, tag_row.machine) == (stranger, False, "TP-07")


# --- a machine on simulated devices -----------------------------------------------------------


async def test_machine_moves_a_container(sessions: sessionmaker[Session]) -> None:
    """Lift at one slot, set down at another: the move has the container, machine and slot."""
    moves: list[Move] = []
    health: list[DeviceHealth] = []
    recorder = Recorder()
    async with SimulatedReader(tick_s=0.005) as reader, PositionUnit(rate_hz=20) as unit:
        machine = MachineConfig(
            id="TP-07", kind="top_pick", position_url=unit.url,
            reader=LlrpReaderConfig(host="127.0.0.1", port=reader.port, antennas=[1],
                                    watchdog_s=1.0, keepalive_s=0.2, dedupe_window_s=0.1),
        )
        service = YardMoveService("T1", machine, GEOMETRY, sessions, health.append, moves.append,
                                  ignore_epcs=[MACHINE_EPC])
        reader.field.show(MACHINE_EPC, antenna=1, rate=20)  # its own tag, always in view
        unit.move_to(*GEOMETRY.position_of(FROM_SLOT))
        async with supervised(service):
            await recorder.until(lambda: {(h.device, h.up) for h in health} >= {
                ("TP-07/rfid", True), ("TP-07/position", True)})
            reader.field.show(CONTAINER_EPC, antenna=1, duration_s=1.5, rate=30, rssi=-45)
            await recorder.until(lambda: reader.tags_reported > 5)
            unit.lock()
            await recorder.until(lambda: service.tracker.lifting)
            unit.move_to(*GEOMETRY.position_of(TO_SLOT))
            await recorder.until(lambda: unit.fixes_sent > 0)
            unit.unlock()
            await recorder.until(lambda: len(moves) == 1)
    assert (moves[0].container_number, moves[0].machine) == (CONTAINER, "TP-07")
    assert (moves[0].from_location, moves[0].to_location) == ("A1-03-02-1", "A1-07-05-2")
    rows, events = moves_and_events(sessions)
    assert len(rows) == 1 and len(events) == 1
    assert [(h.device, h.up) for h in health].count(("TP-07/position", False)) == 0


async def test_position_unit_outages_and_bad_lines(sessions: sessionmaker[Session]) -> None:
    health: list[DeviceHealth] = []
    waiter = Recorder()

    def position_states() -> list[bool]:
        return [h.up for h in health if h.device == "TP-07/position"]

    async with PositionUnit(rate_hz=20) as unit:
        machine = MachineConfig(
            id="TP-07", kind="top_pick", position_url=unit.url,
            reader=LlrpReaderConfig(host="127.0.0.1", port=free_port(), backoff_cap_s=0.5),
        )
        service = YardMoveService("T1", machine, GEOMETRY, sessions, health.append,
                                  position_watchdog_s=0.4, backoff_cap_s=0.3)
        async with supervised(service):
            await waiter.until(lambda: position_states() == [True])
            unit.faults.garbage = True
            await waiter.until(lambda: service.bad_position_lines >= 3)
            unit.faults.garbage = False
            unit.faults.silent = True
            await waiter.until(lambda: position_states() == [True, False])
            downs = [h for h in health if h.device == "TP-07/position" and not h.up]
            assert "no position" in downs[0].detail
            unit.faults.silent = False
            await waiter.until(lambda: position_states() == [True, False, True])
            unit.drop_connections()
            await waiter.until(lambda: position_states() == [True, False, True, False, True])
    assert ("TP-07/rfid", False) in [(h.device, h.up) for h in health]  # no reader: reported
    assert service.moves_written == 0


async def test_machine_takes_a_container_off_a_truck(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add(models.Truck(epc=TRUCK_EPC, plate="KX-101"))
        visit = models.GateTransaction(lane="1", direction="in", state="closed",
                                       truck_epc=TRUCK_EPC)
        visit.containers.append(models.TransactionContainer(
            position=0, container_number="MSCU1234565", size_type="42G1"))
        session.add(visit)
    moves: list[Move] = []
    health: list[DeviceHealth] = []
    waiter = Recorder()
    async with SimulatedReader(tick_s=0.005) as reader, PositionUnit(rate_hz=20) as unit:
        machine = MachineConfig(
            id="RS-02", kind="reach_stacker", position_url=unit.url,
            reader=LlrpReaderConfig(host="127.0.0.1", port=reader.port, antennas=[1],
                                    watchdog_s=1.0, keepalive_s=0.2, dedupe_window_s=0.1),
        )
        service = YardMoveService("T1", machine, GEOMETRY, sessions, health.append, moves.append)
        async with supervised(service):
            await waiter.until(lambda: {(h.device, h.up) for h in health} >= {
                ("RS-02/rfid", True), ("RS-02/position", True)})
            truck_bay = (80.0, 30.0, 1.5)  # a transfer lane beside the blocks, on the chassis
            await perform_lift(unit, reader.field, TRUCK_EPC, truck_bay,
                               GEOMETRY.position_of(TO_SLOT), travel_s=0.8, rate=40)
            await waiter.until(lambda: len(moves) == 1)
    move = moves[0]
    assert (move.container_number, move.machine, move.truck) == ("MSCU1234565", "RS-02", TRUCK_EPC)
    assert (move.from_location, move.to_location) == ("truck KX-101", "A1-07-05-2")
