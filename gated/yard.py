"""Yard moves: a machine's RFID reader and position unit turn a lift into a move for the TOS.

A container handling machine (top-pick, reach stacker, straddle carrier, RTG) carries an LLRP
reader and a position unit. When the spreader locks, the reader sees the tag of the container
or of the truck it stands on; when the spreader unlocks, the machine's position becomes a yard
slot (block / bay / row / tier) through the yard geometry. `record_yard_move` writes the move
and its TOS event in one database transaction; `YardMoveService` runs one machine.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from stdnum import iso6346

from gated import models
from gated.config import MachineConfig, YardBlock, YardConfig
from gated.domain import DeviceHealth, Move, MoveKind, TagRead, utcnow
from gated.events import queue_move

_LOGGER = logging.getLogger(__name__)

TRUCK_VISIT_MAX_AGE = timedelta(hours=12)  # a gate-in older than this is not the truck's load
POSITION_GAP_NOTE_S = 5.0  # a longer gap between fixes during a lift is noted on the move


# --- geometry ---------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class YardSlot:
    block: str
    bay: int
    row: int
    tier: int

    def __str__(self) -> str:
        return f"{self.block}-{self.bay:02d}-{self.row:02d}-{self.tier}"


class YardGeometry:
    """Blocks laid out on the yard's x/y plane in metres; z is the height above the ground."""

    def __init__(self, blocks: Sequence[YardBlock]) -> None:
        self.blocks = list(blocks)

    def slot_at(self, x: float, y: float, z: float) -> YardSlot | None:
        """The slot a spreader at (x, y, z) holds a container in, or None outside every block.

        z is the height of the container's bottom: tier 1 stands on the ground.
        """
        for block in self.blocks:
            bay = math.floor((x - block.origin_x_m) / block.bay_length_m) + 1
            row = math.floor((y - block.origin_y_m) / block.row_width_m) + 1
            if not (1 <= bay <= block.bays and 1 <= row <= block.rows):
                continue
            tier = max(1, math.floor(z / block.tier_height_m + 0.5) + 1)
            if tier > block.tiers:
                return None
            return YardSlot(block.name, bay, row, tier)
        return None

    def position_of(self, slot: YardSlot) -> tuple[float, float, float]:
        """Where a spreader stands to hold a container in `slot` (centre of the slot)."""
        for block in self.blocks:
            if block.name == slot.block:
                return (
                    block.origin_x_m + (slot.bay - 0.5) * block.bay_length_m,
                    block.origin_y_m + (slot.row - 0.5) * block.row_width_m,
                    (slot.tier - 1) * block.tier_height_m,
                )
        raise KeyError(slot.block)


def yard_problems(yard: YardConfig) -> list[str]:
    """What is wrong with a yard configuration beyond field types (for check-config)."""
    problems = []
    names = [block.name for block in yard.blocks]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"yard block {name!r} is defined more than once")
    for index, first in enumerate(yard.blocks):
        for second in yard.blocks[index + 1 :]:
            if _overlap(first, second):
                problems.append(f"yard blocks {first.name!r} and {second.name!r} overlap")
    ids = [machine.id for machine in yard.machines]
    for machine_id in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"yard machine {machine_id!r} is defined more than once")
    for machine in yard.machines:
        url = urlsplit(machine.position_url)
        try:
            port = url.port
        except ValueError:
            port = None
        if url.scheme != "tcp" or not url.hostname or not port:
            problems.append(
                f"yard machine {machine.id!r}: position_url {machine.position_url!r} is not"
                " tcp://host:port"
            )
    return problems


def _overlap(a: YardBlock, b: YardBlock) -> bool:
    a_x, a_y = a.origin_x_m + a.bays * a.bay_length_m, a.origin_y_m + a.rows * a.row_width_m
    b_x, b_y = b.origin_x_m + b.bays * b.bay_length_m, b.origin_y_m + b.rows * b.row_width_m
    return (
        a.origin_x_m < b_x and b.origin_x_m < a_x and a.origin_y_m < b_y and b.origin_y_m < a_y
    )


# --- position fixes and lifts -----------------------------------------------------------------


@dataclass(frozen=True)
class PositionFix:
    x: float
    y: float
    z: float
    locked: bool
    at: datetime  # host clock


def parse_position_line(line: bytes | str, at: datetime) -> PositionFix:
    """One JSON line of a position unit: {"x", "y", "z", "spreader": "locked"|"unlocked"}."""
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("a fix must be a JSON object")
    try:
        x, y, z = (float(data[key]) for key in ("x", "y", "z"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"x, y and z must be numbers: {exc}") from exc
    if not all(math.isfinite(v) for v in (x, y, z)):
        raise ValueError("x, y and z must be finite")
    spreader = data.get("spreader")
    if spreader not in ("locked", "unlocked"):
        raise ValueError(f"spreader must be 'locked' or 'unlocked', not {spreader!r}")
    return PositionFix(x, y, z, spreader == "locked", at)


@dataclass(frozen=True)
class TagSighting:
    epc: str
    rssi: float | None
    count: int
    first_seen: datetime


@dataclass(frozen=True)
class Lift:
    """One container handled by a machine: spreader locked at `pick`, unlocked at `drop`."""

    machine: str
    pick: PositionFix
    drop: PositionFix
    from_slot: YardSlot | None
    to_slot: YardSlot | None
    tags: tuple[TagSighting, ...]  # strongest first
    position_gap_s: float = 0.0  # longest time without a fix while the spreader was locked


@dataclass
class _Sighting:
    rssi: float | None
    count: int
    first_seen: datetime


class LiftTracker:
    """Pure state machine: position fixes and tag reads in, a `Lift` out at each unlock."""

    def __init__(
        self,
        machine: str,
        geometry: YardGeometry,
        ignore_epcs: Iterable[str] = (),
        lead_s: float = 2.0,
    ) -> None:
        self.machine = machine
        self.geometry = geometry
        self.ignore = {epc.upper() for epc in ignore_epcs}
        self.lead = timedelta(seconds=lead_s)
        self._recent: collections.deque[TagRead] = collections.deque(maxlen=1000)
        self._pick: PositionFix | None = None
        self._locked: bool | None = None
        self._last_fix: datetime | None = None
        self._gap_s = 0.0
        self._seen: dict[str, _Sighting] = {}

    @property
    def lifting(self) -> bool:
        return self._pick is not None

    def on_read(self, read: TagRead) -> None:
        if read.epc in self.ignore:
            return
        if self._pick is not None:
            self._note(read)
        else:
            self._recent.append(read)

    def on_fix(self, fix: PositionFix) -> Lift | None:
        was_locked, self._locked = self._locked, fix.locked
        if self._pick is not None and self._last_fix is not None:
            self._gap_s = max(self._gap_s, (fix.at - self._last_fix).total_seconds())
        self._last_fix = fix.at
        if fix.locked and not was_locked:
            self._pick = fix
            self._gap_s = 0.0
            self._seen = {}
            for read in self._recent:  # the tag answers as the spreader comes down onto it
                if read.seen_at >= fix.at - self.lead:
                    self._note(read)
            self._recent.clear()
            return None
        if not fix.locked and was_locked and self._pick is not None:
            pick, self._pick = self._pick, None
            tags = sorted(
                (TagSighting(epc, s.rssi, s.count, s.first_seen) for epc, s in self._seen.items()),
                key=lambda t: (t.rssi is None, -(t.rssi or 0.0), -t.count),
            )
            return Lift(
                machine=self.machine,
                pick=pick,
                drop=fix,
                from_slot=self.geometry.slot_at(pick.x, pick.y, pick.z),
                to_slot=self.geometry.slot_at(fix.x, fix.y, fix.z),
                tags=tuple(tags),
                position_gap_s=self._gap_s,
            )
        return None

    def _note(self, read: TagRead) -> None:
        seen = self._seen.get(read.epc)
        if seen is None:
            self._seen[read.epc] = _Sighting(read.rssi, read.seen_count, read.seen_at)
            return
        seen.count += read.seen_count
        if read.rssi is not None and (seen.rssi is None or read.rssi > seen.rssi):
            seen.rssi = read.rssi


# --- resolving the container and writing the move ---------------------------------------------


def container_from_epc(epc: str) -> str | None:
    """A container tag that carries its ISO 6346 number in ASCII (zero or space padded)."""
    try:
        text = bytes.fromhex(epc).decode("ascii").strip("\x00 ")
    except (ValueError, UnicodeDecodeError):
        return None
    return text if len(text) == 11 and iso6346.is_valid(text) else None


@dataclass
class Resolution:
    container_number: str | None = None
    size_type: str | None = None
    source: str | None = None  # container_tag, truck_tag, yard_inventory
    truck_epc: str | None = None
    truck_plate: str | None = None
    notes: list[str] = field(default_factory=list)


def _truck(session: Session, epcs: Sequence[str]) -> models.Truck | None:
    for epc in epcs:
        truck = session.scalars(select(models.Truck).where(models.Truck.epc == epc)).first()
        if truck is not None:
            return truck
    return None


def _container_on_truck(
    session: Session, truck: models.Truck, at: datetime
) -> tuple[str, str | None] | None:
    """The container the truck brought through the gate and no machine has taken off yet."""
    visit = session.scalars(
        select(models.GateTransaction)
        .where(models.GateTransaction.truck_epc == truck.epc)
        .where(models.GateTransaction.direction == "in")
        .where(models.GateTransaction.arrived_at >= at - TRUCK_VISIT_MAX_AGE)
        .order_by(models.GateTransaction.arrived_at.desc())
    ).first()
    if visit is None:
        return None
    for container in visit.containers:
        number = container.container_number
        if number is None:
            continue
        moved = session.scalars(
            select(models.Move.id)
            .where(models.Move.kind == MoveKind.YARD.value)
            .where(models.Move.container_number == number)
            .where(models.Move.occurred_at >= visit.arrived_at)
        ).first()
        if moved is None:
            return number, container.size_type
    return None


def _container_in_slot(session: Session, slot: YardSlot) -> str | None:
    """The container the yard's own move history puts in `slot`, if it has not left since."""
    last_in = session.scalars(
        select(models.Move)
        .where(models.Move.to_location == str(slot))
        .order_by(models.Move.occurred_at.desc(), models.Move.id.desc())
    ).first()
    if last_in is None:
        return None
    latest = session.scalars(
        select(models.Move)
        .where(models.Move.container_number == last_in.container_number)
        .order_by(models.Move.occurred_at.desc(), models.Move.id.desc())
    ).first()
    return last_in.container_number if latest is last_in else None


def resolve_lift(session: Session, lift: Lift) -> Resolution:
    """Which container a lift moved: its own tag, the truck it came on, or the slot's history."""
    result = Resolution()
    epcs = [tag.epc for tag in lift.tags]
    truck = _truck(session, epcs)
    if truck is not None:
        result.truck_epc, result.truck_plate = truck.epc, truck.plate
    for epc in epcs:
        number = container_from_epc(epc)
        if number is not None:
            result.container_number, result.source = number, "container_tag"
            return result
    if truck is not None and lift.from_slot is None:
        found = _container_on_truck(session, truck, lift.pick.at)
        if found is not None:
            result.container_number, result.size_type = found
            result.source = "truck_tag"
            return result
        result.notes.append(f"truck {truck.epc} has no container waiting to be lifted")
    if lift.from_slot is not None:
        number = _container_in_slot(session, lift.from_slot)
        if number is not None:
            result.container_number, result.source = number, "yard_inventory"
            return result
        result.notes.append(f"no container known in slot {lift.from_slot}")
    if not epcs:
        result.notes.append("no tag seen while the spreader was locked")
    return result


def _location(slot: YardSlot | None, fix: PositionFix, truck: str | None) -> str:
    if slot is not None:
        return str(slot)
    if truck is not None:
        return f"truck {truck}"
    return f"x {fix.x:.1f} y {fix.y:.1f}"


def record_yard_move(
    session: Session, *, site: str, lift: Lift, reader: str | None = None
) -> Move | None:
    """Write the lift's tag reads, then its move and TOS event, in the caller's transaction.

    Returns the move, or None when no container could be named: the lift is then kept as an
    unmatched event for a clerk, with every tag seen (unknown tags are flagged, not dropped).
    """
    resolution = resolve_lift(session, lift)
    if lift.position_gap_s > POSITION_GAP_NOTE_S:
        resolution.notes.append(
            f"position unit silent for {lift.position_gap_s:.0f} s during the lift: check the"
            " drop position"
        )
    known_epcs = {resolution.truck_epc} if resolution.truck_epc else set()
    for tag in lift.tags:
        session.add(
            models.TagReadRow(
                machine=lift.machine,
                reader=reader or lift.machine,
                antenna=0,
                epc=tag.epc,
                rssi=tag.rssi,
                seen_at=tag.first_seen,
                known=tag.epc in known_epcs or container_from_epc(tag.epc) is not None,
            )
        )
    details: dict[str, Any] = {
        "source": resolution.source,
        "tags": [tag.epc for tag in lift.tags],
        "pick": {"x": lift.pick.x, "y": lift.pick.y, "z": lift.pick.z, "at": lift.pick.at},
        "drop": {"x": lift.drop.x, "y": lift.drop.y, "z": lift.drop.z, "at": lift.drop.at},
        "notes": resolution.notes,
    }
    if resolution.container_number is None:
        session.add(
            models.UnmatchedEvent(
                kind="yard_lift", at=lift.drop.at, payload=json.loads(json.dumps(
                    {"machine": lift.machine, **details}, default=str
                )),
            )
        )
        _LOGGER.warning(
            "yard: machine %s: lift at %s not resolved (%s)",
            lift.machine,
            _location(lift.to_slot, lift.drop, None),
            "; ".join(resolution.notes) or "no container named",
        )
        return None
    truck_name = resolution.truck_plate or resolution.truck_epc
    from_truck = truck_name if lift.from_slot is None else None
    to_truck = truck_name if lift.to_slot is None and lift.from_slot is not None else None
    row = models.Move(
        kind=MoveKind.YARD.value,
        machine=lift.machine,
        container_number=resolution.container_number,
        size_type=resolution.size_type,
        from_location=_location(lift.from_slot, lift.pick, from_truck),
        to_location=_location(lift.to_slot, lift.drop, to_truck),
        truck=resolution.truck_epc,
        occurred_at=lift.drop.at,
        details=json.loads(json.dumps(details, default=str)),
    )
    queue_move(session, site, row)
    _LOGGER.info(
        "yard: machine %s moved %s from %s to %s",
        lift.machine, row.container_number, row.from_location, row.to_location,
    )
    return Move(
        kind=MoveKind.YARD,
        container_number=row.container_number,
        from_location=row.from_location,
        to_location=row.to_location,
        at=lift.drop.at,
        truck=resolution.truck_epc,
        machine=lift.machine,
    )


# --- the service of one machine ---------------------------------------------------------------


class YardMoveService:
    """One yard machine: its LLRP reader and position unit in, yard moves out.

    Both devices are supervised: each is reported down once and up once per outage through
    `on_health` (device names `<machine>/rfid` and `<machine>/position`).
    """

    def __init__(
        self,
        site: str,
        machine: MachineConfig,
        geometry: YardGeometry,
        sessions: sessionmaker[Session],
        on_health: Callable[[DeviceHealth], None],
        on_move: Callable[[Move], None] | None = None,
        ignore_epcs: Iterable[str] = (),
        position_watchdog_s: float = 3.0,
        backoff_cap_s: float = 10.0,
    ) -> None:
        self.site = site
        self.machine = machine
        self.sessions = sessions
        self.on_health = on_health
        self.on_move = on_move
        self.tracker = LiftTracker(machine.id, geometry, ignore_epcs)
        self.position_watchdog_s = position_watchdog_s
        self.backoff_cap_s = backoff_cap_s
        self.position_up: bool | None = None
        self.bad_position_lines = 0
        self.moves_written = 0
        self.lifts_unresolved = 0
        url = urlsplit(machine.position_url)
        problems = yard_problems(YardConfig(machines=[machine]))
        if problems or url.hostname is None or url.port is None:
            raise ValueError("; ".join(problems) or f"machine {machine.id}: bad position_url")
        self._position_address = (url.hostname, url.port)
        self._bad_line_logged = False

    @property
    def reader_name(self) -> str:
        return f"{self.machine.id}/rfid"

    async def run(self) -> None:
        """Run until cancelled."""
        from rfid import ReaderSupervisor  # gated wires the subsystems; rfid knows no yard

        supervisor = ReaderSupervisor(
            self.reader_name, self.machine.reader, self.tracker.on_read, self.on_health
        )
        async with asyncio.TaskGroup() as group:
            group.create_task(supervisor.run(), name=f"yard-{self.machine.id}-rfid")
            group.create_task(self._position_loop(), name=f"yard-{self.machine.id}-position")

    # --- position unit ------------------------------------------------------------------------

    async def _position_loop(self) -> None:
        host, port = self._position_address
        failures = 0
        while True:
            reason = await self._read_positions(host, port)
            if self.position_up:
                failures = 0
            self._position_health(False, reason)
            delay = min(self.backoff_cap_s, 0.25 * 2 ** min(failures, 32))
            failures += 1
            await asyncio.sleep(delay)

    async def _read_positions(self, host: str, port: int) -> str:
        try:
            async with asyncio.timeout(5.0):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            return f"cannot connect: {exc}"
        try:
            while True:
                try:
                    async with asyncio.timeout(self.position_watchdog_s):
                        line = await reader.readline()
                except TimeoutError:
                    return f"no position for {self.position_watchdog_s:g} s"
                if not line:
                    return "connection closed by the unit"
                self._on_line(line)
        except (OSError, ValueError) as exc:  # ValueError: a line longer than the stream limit
            return f"read failed: {exc}"
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _on_line(self, line: bytes) -> None:
        try:
            fix = parse_position_line(line, utcnow())
        except ValueError as exc:
            self.bad_position_lines += 1
            if not self._bad_line_logged:
                self._bad_line_logged = True
                _LOGGER.warning(
                    "yard: machine %s: bad position line ignored (%s); counting further ones",
                    self.machine.id, exc,
                )
            return
        self._position_health(True, "fixes arriving")
        lift = self.tracker.on_fix(fix)
        if lift is not None:
            self._record(lift)

    def _position_health(self, up: bool, detail: str) -> None:
        if self.position_up is up:
            return
        self.position_up = up
        if up:
            _LOGGER.info("yard: machine %s: position unit connected", self.machine.id)
        else:
            _LOGGER.warning("yard: machine %s: position unit lost: %s", self.machine.id, detail)
        self.on_health(
            DeviceHealth(lane=None, device=f"{self.machine.id}/position", up=up, detail=detail)
        )

    # --- moves --------------------------------------------------------------------------------

    def _record(self, lift: Lift) -> None:
        try:
            with self.sessions.begin() as session:
                move = record_yard_move(
                    session, site=self.site, lift=lift, reader=self.reader_name
                )
        except Exception:
            _LOGGER.exception("yard: machine %s: could not store a lift", self.machine.id)
            return
        if move is None:
            self.lifts_unresolved += 1
            return
        self.moves_written += 1
        if self.on_move is not None:
            self.on_move(move)
