"""The simulated world: trucks drive through the portal and the lane, and every simulated
device sees what the truck does. The simulated TOS judges the outcome of each truck."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from hwsim.cameras import CameraFault, CameraSimulator, Scene, SceneContainer
from hwsim.scenario import FaultSpec, Scenario, TruckSpec, expand
from hwsim.tos import GateRecord, SimulatedTos

_LOGGER = logging.getLogger(__name__)

PORTAL_S = 3.0  # driving through the OCR / RFID / radiation portal
MIN_SCAN_S = 2.5  # a radiation scan needs a few 1 s windows, however fast the world runs
TO_PEDESTAL_S = 1.5  # from the portal to the entry loop and the pedestal
CARD_AFTER_S = 1.0  # the driver reaches for the card
PASS_S = 2.0  # through the barrier, over the exit loop


def truck_epc(index: int) -> str:
    """A 96-bit EPC per simulated truck (hex, uppercase)."""
    return f"E2801190{index:016X}"


def size_type_for(load: str) -> str:
    return {"one_40": "42G1", "one_45": "L5G1"}.get(load, "22G1")


@dataclass
class LaneRig:
    """One lane's simulated devices (any may be absent in a partial simulation)."""

    lane: str
    reader: Any = None
    rpm: Any = None
    plc: Any = None
    card_reader: Any = None
    scale: Any = None
    printer: Any = None


@dataclass
class TruckResult:
    index: int
    lane: str
    expect: str
    got: str | None
    reasons: list[str]
    containers: list[str]
    moves: list[str]
    ok: bool
    unread: bool = False  # expected PROCEED, sent to a clerk only because OCR could not read


@dataclass
class Summary:
    scenario: str
    trucks: list[TruckResult] = field(default_factory=list)
    unexpected_transactions: int = 0
    tos_errors: int = 0

    @property
    def mismatches(self) -> int:
        """Outcomes the gate got wrong. A container the OCR could not read sends its truck to
        a clerk: the safe outcome, counted apart as `unread` (OCR accuracy is measured by
        bench/ocr_accuracy.py), never as a match."""
        return sum(1 for t in self.trucks if not t.ok and not t.unread) \
            + self.unexpected_transactions

    @property
    def unread(self) -> int:
        return sum(1 for t in self.trucks if t.unread)

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "trucks": [t.__dict__ for t in self.trucks],
            "mismatches": self.mismatches,
            "unread": self.unread,
            "unexpected_transactions": self.unexpected_transactions,
            "tos_errors": self.tos_errors,
        }

    def text(self) -> str:
        lines = [f"scenario {self.scenario}: {len(self.trucks)} trucks, "
                 f"{self.mismatches} mismatches, {self.unread} unread by OCR (to a clerk)"]
        for t in self.trucks:
            mark = "ok  " if t.ok else ("READ" if t.unread else "MISS")
            lines.append(
                f"  {mark} truck {t.index:3d} lane {t.lane}: expected {t.expect:10s} "
                f"got {t.got or '-':10s} {','.join(t.containers) or '(no container)'} "
                f"{'; '.join(t.reasons)}"
            )
        return "\n".join(lines)


class World:
    def __init__(
        self,
        scenario: Scenario,
        rigs: dict[str, LaneRig],
        cameras: CameraSimulator | None,
        tos: SimulatedTos | None,
        broker: Any = None,
        trucks: list[TruckSpec] | None = None,
    ) -> None:
        self.scenario = scenario
        self.rigs = rigs
        self.cameras = cameras
        self.tos = tos
        self.broker = broker
        self.trucks = trucks if trucks is not None else expand(scenario)
        self.decisions_seen = 0

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.scenario.speed)

    # --- the run -----------------------------------------------------------------------------

    async def run(self) -> Summary:
        tasks = [
            asyncio.create_task(self._lane_traffic(lane), name=f"lane-{lane}-traffic")
            for lane in self.rigs
        ]
        tasks += [
            asyncio.create_task(self._fault(fault), name=f"fault-{n}")
            for n, fault in enumerate(self.scenario.faults)
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        await self._settle()
        return self.summary()

    async def _settle(self, timeout_s: float = 30.0) -> None:
        """Wait (real time) until the TOS has every transaction's end and every move."""
        if self.tos is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            by_lane, moves = self.tos.snapshot()
            records = [r for rs in by_lane.values() for r in rs]
            expected_moves = sum(
                len(t.containers) for t in self.trucks if t.expect == "PROCEED"
            )
            if len(records) >= len(self.trucks) and all(r.ended for r in records) \
                    and len(moves) >= expected_moves:
                return
            await asyncio.sleep(0.2)

    async def _lane_traffic(self, lane: str) -> None:
        """A lane's trucks, one after the other, in the order of the scenario: a truck reaches
        the portal at its time or when the truck before it has gone, whichever is later."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        for index, truck in enumerate(self.trucks):
            if truck.lane != lane:
                continue
            wait = started + truck.at / self.scenario.speed - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            epc = truck_epc(index)
            if self.tos is not None:
                await asyncio.to_thread(self.tos.announce, truck, epc, index)
            await self._drive(index, truck, epc)

    async def _drive(self, index: int, truck: TruckSpec, epc: str) -> None:
        faults = [FaultSpec(at=0, lane=truck.lane, kind=kind) for kind in truck.faults]
        for fault in faults:
            await self._apply(fault, on=True)
        try:
            await self._drive_through(index, truck, epc)
        finally:
            for fault in faults:
                await self._apply(fault, on=False)

    async def _drive_through(self, index: int, truck: TruckSpec, epc: str) -> None:
        rig = self.rigs[truck.lane]
        _LOGGER.info("truck %d (%s) enters the portal of lane %s", index, epc, truck.lane)
        if self.cameras is not None:
            containers = tuple(
                SceneContainer(number, size_type_for(truck.load)) for number in truck.containers
            )
            self.cameras.set_scene(truck.lane, Scene(
                containers=containers, chassis=truck.load != "bobtail", seed=index,
                unreadable=truck.unreadable,
            ))
            # the pictures are rendered while the truck approaches: a real camera answers at
            # once, a simulated one must not be slower because it draws
            await self.cameras.rendered(truck.lane)
        portal_s = max(PORTAL_S / self.scenario.speed, MIN_SCAN_S)
        if rig.reader is not None:
            rig.reader.field.show(epc, antenna=1, duration_s=portal_s)
        if rig.rpm is not None:
            rig.rpm.begin_occupancy(cargo=truck.cargo, duration_s=portal_s)
        await asyncio.sleep(portal_s)
        await self._sleep(TO_PEDESTAL_S)

        if rig.plc is not None:
            rig.plc.set_containers(len(truck.containers))
            rig.plc.set_entry_loop(True)
        if rig.scale is not None:
            rig.scale.drive_on(truck.gross_kg)
        await self._sleep(CARD_AFTER_S)
        if rig.card_reader is not None and truck.card != "none":
            await rig.card_reader.present(truck.card, truck.company)

        opened = await self._wait_for_barrier(rig)
        if opened:
            await self._pass_barrier(rig)
        else:
            _LOGGER.info("truck %d: barrier stays closed, backing out of lane %s", index,
                         truck.lane)
            if rig.plc is not None:
                rig.plc.set_entry_loop(False)
        if rig.plc is not None:
            rig.plc.set_containers(0)
        if rig.scale is not None:
            rig.scale.drive_off()
        if self.cameras is not None:
            self.cameras.set_scene(truck.lane, None)
        await self._sleep(1.0)

    async def _wait_for_barrier(self, rig: LaneRig) -> bool:
        if rig.plc is None:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.scenario.patience_s / self.scenario.speed
        while loop.time() < deadline:
            if rig.plc.barrier_open:
                return True
            await asyncio.sleep(0.05)
        return False

    async def _pass_barrier(self, rig: LaneRig) -> None:
        plc = rig.plc
        plc.set_entry_loop(False)
        plc.set_photo_eye(True)
        plc.set_exit_loop(True)
        await self._sleep(PASS_S)
        plc.set_photo_eye(False)
        plc.set_exit_loop(False)
        await self._sleep(0.5)

    # --- faults -------------------------------------------------------------------------------

    async def _fault(self, fault: FaultSpec) -> None:
        await self._sleep(fault.at)
        _LOGGER.info("fault %s on lane %s for %.1f s", fault.kind, fault.lane, fault.duration)
        await self._apply(fault, on=True)
        await self._sleep(fault.duration)
        await self._apply(fault, on=False)

    async def _apply(self, fault: FaultSpec, on: bool) -> None:
        """Switch one fault on or off."""
        rig = self.rigs.get(fault.lane)
        if fault.kind == "reader_disconnect" and rig and rig.reader is not None:
            rig.reader.faults.refuse = on
            if on:
                rig.reader.drop_connection()
        elif fault.kind == "rpm_fault" and rig and rig.rpm is not None:
            rig.rpm.set_fault(on)
        elif fault.kind == "camera_down" and self.cameras is not None:
            for camera in self.cameras.cameras:
                self.cameras.set_fault(fault.lane, camera, CameraFault.DOWN if on else None)
        elif fault.kind == "corrupted_frames" and rig and rig.card_reader is not None and on:
            rig.card_reader.device.write(b"\x02garbage\xff\x00\x03")
        elif fault.kind == "broker_stop" and self.broker is not None:
            await asyncio.to_thread(self.broker.stop if on else self.broker.start)

    # --- verdict ------------------------------------------------------------------------------

    def summary(self) -> Summary:
        summary = Summary(self.scenario.name)
        if self.tos is None:
            return summary
        by_lane, moves = self.tos.snapshot()
        moved = {m.get("container_number") for m in moves.values()}
        summary.tos_errors = len(self.tos.errors)
        for lane in self.rigs:
            records: list[GateRecord] = list(by_lane.get(lane, []))
            lane_trucks = [(i, t) for i, t in enumerate(self.trucks) if t.lane == lane]
            for position, (index, truck) in enumerate(lane_trucks):
                record = records[position] if position < len(records) else None
                got = record.decision if record else None
                truck_moves = [n for n in truck.containers if n in moved]
                ok = got == truck.expect
                if ok and truck.expect == "PROCEED":
                    ok = len(truck_moves) == len(truck.containers)
                reasons = record.reasons if record else []
                unread = (truck.expect == "PROCEED" and got == "TROUBLE"
                          and set(reasons) == {"container_unreadable"})
                summary.trucks.append(TruckResult(
                    index, lane, truck.expect, got, reasons,
                    record.containers if record else [], truck_moves, ok, unread,
                ))
            summary.unexpected_transactions += max(0, len(records) - len(lane_trucks))
        return summary


def write_summary(summary: Summary, path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(summary.as_json(), handle, indent=2)
