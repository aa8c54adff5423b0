"""The gate PLC over Modbus TCP: loops, photo-eye, barrier and traffic light.

Every site has its own map (`PlcRegisterMap`). Loops and the photo-eye are discrete inputs,
the barrier's status, position and the PLC heartbeat are holding registers, commands are coils
the PLC clears once it has taken them (pulses). The interlock is enforced here as well as in
the PLC: the barrier closes only while the photo-eye is clear and the exit loop is empty, and a
barrier that is closing when either changes is sent back up.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from drivers.modbus import Backoff, ModbusConnection, ModbusError, read_plan
from gated.config import PlcConfig
from gated.domain import DeviceHealth, utcnow

_LOGGER = logging.getLogger(__name__)

DEVICE = "plc"


class BarrierStatus(enum.IntEnum):
    OPEN = 16
    CLOSED = 17
    OPENING = 32
    CLOSING = 33


class PlcError(Exception):
    """A command the PLC could not be given (not connected, refused, no answer)."""


@dataclass(frozen=True)
class PlcState:
    """The lane's field inputs and the barrier, as last read; photo_eye True means blocked."""

    entry_loop: bool = False
    exit_loop: bool = False
    photo_eye: bool = False
    container_present: bool | None = None  # None: no presence sensor fitted
    container_count: int | None = None  # None: no profile scanner fitted
    barrier_status: int = 0
    barrier_position: int = 0
    healthy: bool = False

    @property
    def barrier(self) -> str:
        """open, closed, opening, closing or fault."""
        try:
            return BarrierStatus(self.barrier_status).name.lower()
        except ValueError:
            return "fault"


@dataclass(frozen=True)
class PlcChange:
    """One input or barrier change: name is entry_loop, exit_loop, photo_eye or barrier."""

    lane: str
    name: str
    value: bool | str
    at: datetime


HealthCallback = Callable[[DeviceHealth], None]
ChangeCallback = Callable[[PlcChange], None]


class GatePlc:
    """Polls the PLC, reports changes, and gives barrier and light commands."""

    def __init__(
        self,
        lane: str,
        config: PlcConfig,
        on_health: HealthCallback | None = None,
        on_change: ChangeCallback | None = None,
    ) -> None:
        self.lane = lane
        self.config = config
        self.changes: asyncio.Queue[PlcChange] = asyncio.Queue()
        self._on_health = on_health
        self._on_change = on_change
        self._connection = ModbusConnection(
            f"plc-{lane}", config.host, config.port, config.device_id, config.timeout_s
        )
        self._state = PlcState()
        self._reason = "not connected yet"
        self._reported: bool | None = None
        self._last_heartbeat: int | None = None
        self._heartbeat_changed = time.monotonic()
        self._target: BarrierStatus | None = None
        self._target_at = 0.0
        self.errors = 0
        self.last_error: str | None = None
        self.interlock_held: str | None = None  # why the last close_barrier reopened

    # --- what the lane reads ---------------------------------------------------------------

    @property
    def state(self) -> PlcState:
        return self._state

    @property
    def healthy(self) -> bool:
        return self._state.healthy

    @property
    def health_reason(self) -> str:
        return "" if self._state.healthy else self._reason

    @property
    def problem(self) -> str | None:
        """Why the PLC cannot be used right now, or None when it can (gated.ports)."""
        return None if self._state.healthy else self._reason

    @property
    def where(self) -> str:
        return self._connection.address

    # --- commands --------------------------------------------------------------------------

    async def open_barrier(self) -> None:
        await self._pulse(self.config.registers.open_coil, "open barrier")
        self._expect(BarrierStatus.OPEN)

    async def close_barrier(self) -> None:
        """Close if the photo-eye is clear and the exit loop empty; otherwise reopen.

        The inputs are read fresh, not taken from the last poll, so a truck that just moved
        under the barrier keeps it up; `interlock_held` then says why it stayed open.
        """
        regs = self.config.registers
        try:
            photo_eye = (await self._connection.read_discrete_inputs(regs.photo_eye, 1))[0]
            exit_loop = (await self._connection.read_discrete_inputs(regs.exit_loop, 1))[0]
        except ModbusError as exc:
            raise PlcError(f"lane {self.lane}: cannot check the interlock: {exc}") from exc
        if photo_eye or exit_loop:
            why = "photo-eye blocked" if photo_eye else "exit loop occupied"
            _LOGGER.info("lane %s: barrier stays open: %s", self.lane, why)
            self.interlock_held = why
            await self.open_barrier()
            return
        self.interlock_held = None
        await self._pulse(regs.close_coil, "close barrier")
        self._expect(BarrierStatus.CLOSED)

    async def set_light(self, colour: str) -> None:
        """Traffic light "red" or "green" (the other one goes off)."""
        if colour not in ("red", "green"):
            raise ValueError(f"no traffic light colour {colour!r}")
        regs = self.config.registers
        try:
            await self._connection.write_coil(regs.green_light_coil, colour == "green")
            await self._connection.write_coil(regs.red_light_coil, colour == "red")
        except ModbusError as exc:
            raise PlcError(f"lane {self.lane}: cannot set the light {colour}: {exc}") from exc

    async def _pulse(self, coil: int, what: str) -> None:
        try:
            await self._connection.write_coil(coil, True)
        except ModbusError as exc:
            raise PlcError(f"lane {self.lane}: cannot {what}: {exc}") from exc
        _LOGGER.info("lane %s: %s", self.lane, what)

    def _expect(self, target: BarrierStatus) -> None:
        self._target = target
        self._target_at = time.monotonic()

    # --- polling ---------------------------------------------------------------------------

    async def run(self) -> None:
        backoff = Backoff(cap_s=self.config.backoff_cap_s)
        try:
            while True:
                try:
                    await self._connection.connect()
                    await self._poll_forever(backoff)
                except ModbusError as exc:
                    delay = backoff.next()
                    self.errors += 1
                    self.last_error = str(exc)
                    # the loss itself is logged once by _set_health; retries only at debug
                    _LOGGER.debug(
                        "lane %s: PLC %s: %s; retrying in %.1f s", self.lane, self.where, exc, delay
                    )
                    self._set_health(False, f"{exc.kind.replace('_', ' ')}: {exc}")
                    await self._connection.close()
                    await asyncio.sleep(delay)
        finally:
            await self._connection.close()

    async def _poll_forever(self, backoff: Backoff) -> None:
        self._last_heartbeat = None
        self._heartbeat_changed = time.monotonic()
        budget = self.config.timeout_s * 4
        while True:
            try:
                async with asyncio.timeout(budget):
                    inputs, registers = await self._read()
            except TimeoutError as exc:
                raise ModbusError("timeout", f"poll took longer than {budget:.1f} s") from exc
            await self._process(inputs, registers)
            backoff.reset()
            await asyncio.sleep(self.config.poll_interval_s)

    async def _read(self) -> tuple[dict[int, bool], dict[int, int]]:
        regs = self.config.registers
        inputs: dict[int, bool] = {}
        wanted = [(regs.entry_loop, 1), (regs.exit_loop, 1), (regs.photo_eye, 1)]
        if regs.container_present is not None:
            wanted.append((regs.container_present, 1))
        for address, count in read_plan(wanted):
            bits = await self._connection.read_discrete_inputs(address, count)
            inputs.update(zip(range(address, address + count), bits, strict=True))
        registers: dict[int, int] = {}
        wanted_registers = [(regs.barrier_status, 1), (regs.barrier_position, 1),
                            (regs.heartbeat, 1)]
        if regs.container_count is not None:
            wanted_registers.append((regs.container_count, 1))
        for address, count in read_plan(wanted_registers):
            values = await self._connection.read_holding_registers(address, count)
            registers.update(zip(range(address, address + count), values, strict=True))
        position = registers[regs.barrier_position]
        if position > 100:
            raise ModbusError("bad_value", f"{self.where}: barrier position {position} % > 100")
        if regs.container_count is not None and registers[regs.container_count] > 2:
            raise ModbusError(
                "bad_value",
                f"{self.where}: container count {registers[regs.container_count]} > 2",
            )
        return inputs, registers

    async def _process(self, inputs: dict[int, bool], registers: dict[int, int]) -> None:
        regs = self.config.registers
        now = time.monotonic()
        heartbeat = registers[regs.heartbeat]
        if heartbeat != self._last_heartbeat:
            self._last_heartbeat = heartbeat
            self._heartbeat_changed = now
        new = PlcState(
            entry_loop=inputs[regs.entry_loop],
            exit_loop=inputs[regs.exit_loop],
            photo_eye=inputs[regs.photo_eye],
            container_present=(
                None if regs.container_present is None else inputs[regs.container_present]
            ),
            container_count=(
                None if regs.container_count is None else registers[regs.container_count]
            ),
            barrier_status=registers[regs.barrier_status],
            barrier_position=registers[regs.barrier_position],
            healthy=self._state.healthy,
        )
        old, self._state = self._state, new
        for name in ("entry_loop", "exit_loop", "photo_eye", "container_present",
                     "container_count", "barrier"):
            if getattr(old, name) != getattr(new, name):
                self._changed(name, getattr(new, name))

        problems = []
        if now - self._heartbeat_changed > self.config.heartbeat_timeout_s:
            problems.append(f"heartbeat missing for {self.config.heartbeat_timeout_s:g} s")
        if new.barrier == "fault":
            problems.append(f"barrier fault (status {new.barrier_status})")
        if self._target is not None:
            if new.barrier_status == self._target:
                self._target = None
            elif now - self._target_at > self.config.barrier_travel_timeout_s:
                problems.append(f"barrier not {self._target.name.lower()} in time")
        self._set_health(not problems, "; ".join(problems))

        if new.barrier == "closing" and (new.photo_eye or new.exit_loop):
            _LOGGER.warning("lane %s: truck under the closing barrier, reopening", self.lane)
            try:
                await self.open_barrier()
            except PlcError as exc:
                # the next poll finds the connection broken and reports it
                _LOGGER.warning("lane %s: %s", self.lane, exc)

    def _changed(self, name: str, value: bool | str) -> None:
        change = PlcChange(lane=self.lane, name=name, value=value, at=utcnow())
        self.changes.put_nowait(change)
        if self._on_change is not None:
            self._on_change(change)

    def _set_health(self, up: bool, reason: str) -> None:
        self._reason = reason
        if self._state.healthy != up:
            self._state = replace(self._state, healthy=up)
        if self._reported is up:
            return
        self._reported = up
        if up:
            _LOGGER.info("lane %s: PLC %s healthy", self.lane, self.where)
        else:
            _LOGGER.warning("lane %s: PLC %s not healthy: %s", self.lane, self.where, reason)
        if self._on_health is not None:
            self._on_health(DeviceHealth(lane=self.lane, device=DEVICE, up=up, detail=reason))
