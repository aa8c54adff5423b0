"""A simulated gate PLC on Modbus TCP: loops and photo-eye the world sets, a barrier that takes
time to move, a traffic light, command coils it clears once taken (pulses), a heartbeat.

The map is `PlcRegisterMap`. By default the barrier itself does not reverse for a blocked
photo-eye, so the tests see the driver's interlock and not the simulator's; set
`safety_reverse=True` to model a barrier with its own safety edge.
"""

from __future__ import annotations

import logging

from pymodbus.simulator import DataType, SimData

from drivers.plc import BarrierStatus
from gated.config import PlcRegisterMap
from hwsim.modbus_device import (
    FC_COILS,
    FC_DISCRETE_INPUTS,
    FC_HOLDING_REGISTERS,
    SimulatedModbusDevice,
)

_LOGGER = logging.getLogger(__name__)

BARRIER_FAULT = 99


class SimulatedPlc(SimulatedModbusDevice):
    """The gate PLC of one lane on host:`port`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5021,
        *,
        device_id: int = 1,
        registers: PlcRegisterMap | None = None,
        scan_s: float = 0.05,
        barrier_travel_s: float = 3.0,
        safety_reverse: bool = False,
    ) -> None:
        super().__init__(host, port, device_id, scan_s, f"plc {port}")
        self.registers = registers or PlcRegisterMap()
        self.barrier_travel_s = barrier_travel_s
        self.safety_reverse = safety_reverse
        self.entry_loop = False
        self.exit_loop = False
        self.photo_eye = False  # True: beam blocked
        self.container_present = False  # the light curtain at container height is broken
        self.container_count = 0  # containers the profile scanner counts
        self.position = 0.0  # % open
        self.status = BarrierStatus.CLOSED.value
        self.light: str | None = None
        self.commands: list[str] = []  # every command taken, in order, for tests
        self.barrier_fault = False
        self.heartbeat_frozen = False
        self.bad_values = False
        self.heartbeat = 0
        self._moving = 0  # +1 opening, -1 closing, 0 still

    # --- the world's handles --------------------------------------------------------------

    def set_entry_loop(self, occupied: bool) -> None:
        self.entry_loop = occupied

    def set_exit_loop(self, occupied: bool) -> None:
        self.exit_loop = occupied

    def set_container_present(self, present: bool) -> None:
        self.container_present = present

    def set_containers(self, count: int) -> None:
        """The truck at the stop line carries `count` containers (light curtain and profile)."""
        self.container_count = count
        self.container_present = count > 0

    def set_photo_eye(self, blocked: bool) -> None:
        self.photo_eye = blocked

    def set_barrier_fault(self, on: bool = True) -> None:
        self.barrier_fault = on

    def freeze_heartbeat(self, on: bool = True) -> None:
        self.heartbeat_frozen = on

    def set_bad_values(self, on: bool = True) -> None:
        """Publish a barrier position no barrier can have (250 %)."""
        self.bad_values = on

    async def coils(self) -> dict[str, bool]:
        """The command and light coils as a client would read them right now."""
        regs = self.registers
        names = {"open": regs.open_coil, "close": regs.close_coil, "stop": regs.stop_coil,
                 "red": regs.red_light_coil, "green": regs.green_light_coil}
        states = {}
        for name, coil in names.items():
            value = await self.read(FC_COILS, coil, 1)
            states[name] = bool(value and value[0])
        return states

    @property
    def barrier_open(self) -> bool:
        """Fully up: a truck can drive through."""
        return self.status == BarrierStatus.OPEN and not self.barrier_fault

    @property
    def barrier(self) -> str:
        try:
            return BarrierStatus(self.status).name.lower()
        except ValueError:
            return "fault"

    # --- device ---------------------------------------------------------------------------

    def device_blocks(
        self,
    ) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
        regs = self.registers
        coils = max(regs.open_coil, regs.close_coil, regs.stop_coil, regs.red_light_coil,
                    regs.green_light_coil) + 1
        inputs = max(regs.entry_loop, regs.exit_loop, regs.photo_eye,
                     regs.container_present or 0) + 1
        holding = [regs.barrier_status, regs.barrier_position, regs.heartbeat]
        if regs.container_count is not None:
            holding.append(regs.container_count)
        first, last = min(holding), max(holding)
        return (
            [SimData(0, values=[False] * _round16(coils), datatype=DataType.BITS)],
            [SimData(0, values=[False] * _round16(inputs), datatype=DataType.BITS)],
            [SimData(first, count=last - first + 1, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
        )

    async def cycle(self) -> None:
        """One PLC scan: take command pulses, move the barrier, publish inputs and status."""
        await self._take_commands()
        self._move()
        if not self.heartbeat_frozen:
            self.heartbeat = (self.heartbeat + 1) % 65536
        regs = self.registers
        await self.write(FC_DISCRETE_INPUTS, regs.entry_loop, [self.entry_loop])
        await self.write(FC_DISCRETE_INPUTS, regs.exit_loop, [self.exit_loop])
        await self.write(FC_DISCRETE_INPUTS, regs.photo_eye, [self.photo_eye])
        if regs.container_present is not None:
            await self.write(
                FC_DISCRETE_INPUTS, regs.container_present, [self.container_present]
            )
        status = BARRIER_FAULT if self.barrier_fault else self.status
        await self.write(FC_HOLDING_REGISTERS, regs.barrier_status, [status])
        position = 250 if self.bad_values else round(self.position)
        await self.write(FC_HOLDING_REGISTERS, regs.barrier_position, [position])
        await self.write(FC_HOLDING_REGISTERS, regs.heartbeat, [self.heartbeat])
        if regs.container_count is not None:
            await self.write(FC_HOLDING_REGISTERS, regs.container_count, [self.container_count])

    async def _take_commands(self) -> None:
        regs = self.registers
        pulses = {"open": regs.open_coil, "close": regs.close_coil, "stop": regs.stop_coil}
        for command, coil in pulses.items():
            value = await self.read(FC_COILS, coil, 1)
            if value and value[0]:
                await self.write(FC_COILS, coil, [False])
                self.commands.append(command)
                self._moving = {"open": 1, "close": -1, "stop": 0}[command]
        red = await self.read(FC_COILS, regs.red_light_coil, 1)
        green = await self.read(FC_COILS, regs.green_light_coil, 1)
        self.light = "red" if red and red[0] else ("green" if green and green[0] else None)

    def _move(self) -> None:
        if self._moving < 0 and self.safety_reverse and (self.photo_eye or self.exit_loop):
            self._moving = 1
        step = 100.0 * self.cycle_s / self.barrier_travel_s
        self.position = min(100.0, max(0.0, self.position + self._moving * step))
        if self._moving > 0:
            self.status = (BarrierStatus.OPEN if self.position >= 100 else BarrierStatus.OPENING)
        elif self._moving < 0:
            self.status = (BarrierStatus.CLOSED if self.position <= 0 else BarrierStatus.CLOSING)
        if self.position in (0.0, 100.0):
            self._moving = 0


def _round16(count: int) -> int:
    return (count + 15) // 16 * 16
