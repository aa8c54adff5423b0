"""A simulated radiation portal monitor on Modbus TCP (pymodbus server, simulator data model).

`PortalPhysics` makes the counts: Poisson background per panel, the vehicle's shadow, a
natural-radioactivity load (nuisance), a point gamma source, a neutron source. The monitor
samples every 200 ms of simulated time; `sample_period_s` is how long that takes in real time,
so tests run a 10 s truck passage in a fraction of a second. `SimulatedRpm` publishes the state
in the register map of `RpmRegisterMap` and can be told to fail: detector fault, tamper, frozen
heartbeat, exception responses, requests that never get an answer, implausible values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.modbus import float32_to_registers, uint32_to_registers
from drivers.rpm_alarm import GAMMA_SAMPLES_PER_WINDOW, exceeds
from gated.config import RpmRegisterMap

_LOGGER = logging.getLogger(__name__)

Cargo = Literal["clean", "nuisance", "source", "neutron_source"]
SAMPLE_S = 0.2  # simulated seconds per gamma sample
FC_INPUT_REGISTERS = 4


@dataclass
class Passage:
    cargo: Cargo
    samples: int
    done: int = 0


class PortalPhysics:
    """Counts of a 4-gamma / 2-neutron portal, one 200 ms sample at a time."""

    def __init__(
        self,
        gamma_background: tuple[float, ...] = (380.0, 380.0, 405.0, 370.0),
        neutron_background: tuple[float, ...] = (3.6, 2.6),
        monitor_sigma: float = 6.0,
        seed: int | None = None,
    ) -> None:
        self.gamma_background = gamma_background
        self.neutron_background = neutron_background
        self.monitor_sigma = monitor_sigma
        self.rng = np.random.default_rng(seed)
        self.passage: Passage | None = None
        self.occupancy_id = 0
        self.gamma_alarm = False
        self.neutron_alarm = False
        self._gamma_recent: deque[np.ndarray] = deque(maxlen=GAMMA_SAMPLES_PER_WINDOW)
        self._neutron_recent: deque[np.ndarray] = deque(maxlen=GAMMA_SAMPLES_PER_WINDOW)
        self.gamma_estimate = np.array(gamma_background, dtype=float)
        self.neutron_estimate = np.array(neutron_background, dtype=float)

    @property
    def occupied(self) -> bool:
        return self.passage is not None

    def begin(self, cargo: Cargo, duration_s: float) -> None:
        self.passage = Passage(cargo, max(1, round(duration_s / SAMPLE_S)))
        self.gamma_alarm = self.neutron_alarm = False

    def _extra(self, position: float) -> tuple[np.ndarray, np.ndarray, float]:
        """Added gamma cps per panel, added neutron cps per tube, and the shadow factor."""
        gamma = np.zeros(len(self.gamma_background))
        neutron = np.zeros(len(self.neutron_background))
        shadow = 1.0 - 0.3 * math.sin(math.pi * position)
        cargo = self.passage.cargo if self.passage else "clean"
        if cargo == "nuisance":
            # natural radioactivity spread through the whole load: broad, all panels
            plateau = min(1.0, max(0.0, (0.5 - abs(position - 0.5)) / 0.15))
            gamma += 0.9 * np.array(self.gamma_background) * plateau
        elif cargo == "source":
            peak = math.exp(-(((position - 0.5) / 0.08) ** 2) / 2)
            near_far = np.array([4000.0, 4000.0, 1500.0, 1500.0][: len(gamma)])
            gamma[: len(near_far)] += near_far * peak
        elif cargo == "neutron_source":
            neutron += 60.0 * math.exp(-(((position - 0.5) / 0.15) ** 2) / 2)
        return gamma, neutron, shadow

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One 200 ms sample: (gamma counts per panel, neutron counts per tube)."""
        passage = self.passage
        position = (passage.done + 0.5) / passage.samples if passage else 0.0
        extra_gamma, extra_neutron, shadow = self._extra(position) if passage else (0, 0, 1.0)
        gamma_rate = np.array(self.gamma_background) * shadow + extra_gamma
        neutron_rate = np.array(self.neutron_background) + extra_neutron
        gamma = self.rng.poisson(gamma_rate * SAMPLE_S)
        neutron = self.rng.poisson(neutron_rate * SAMPLE_S)
        self._gamma_recent.append(gamma)
        self._neutron_recent.append(neutron)
        if passage is None:
            self.gamma_estimate += 0.02 * (self.gamma_window() - self.gamma_estimate)
            self.neutron_estimate += 0.02 * (self.neutron_window() - self.neutron_estimate)
        else:
            if exceeds(self.gamma_window(), self.gamma_estimate, self.monitor_sigma).any():
                self.gamma_alarm = True
            if exceeds(self.neutron_window(), self.neutron_estimate, self.monitor_sigma).any():
                self.neutron_alarm = True
        return gamma, neutron

    def advance(self) -> bool:
        """Count the sample just taken; True when it was the passage's last one."""
        if self.passage is None:
            return False
        self.passage.done += 1
        if self.passage.done < self.passage.samples:
            return False
        self.passage = None
        self.occupancy_id = (self.occupancy_id + 1) % 65536
        return True

    def gamma_window(self) -> np.ndarray:
        """Counts over the last 1 s per panel."""
        return np.sum(np.array(self._gamma_recent), axis=0)

    def neutron_window(self) -> np.ndarray:
        return np.sum(np.array(self._neutron_recent), axis=0)


class SimulatedRpm:
    """The Modbus TCP monitor on 127.0.0.1:`port`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5020,
        *,
        device_id: int = 1,
        registers: RpmRegisterMap | None = None,
        sample_period_s: float = SAMPLE_S,
        physics: PortalPhysics | None = None,
        seed: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.device_id = device_id
        self.registers = registers or RpmRegisterMap()
        self.sample_period_s = sample_period_s
        self.physics = physics or PortalPhysics(seed=seed)
        self.fault = False
        self.tamper = False
        self.heartbeat_frozen = False
        self.exception_responses = False
        self.stalled = False
        self.bad_values = False
        self.heartbeat = 0
        self.passages_done = asyncio.Event()
        self._server: ModbusTcpServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._release = asyncio.Event()

    # --- the world's handles --------------------------------------------------------------

    def begin_occupancy(self, cargo: Cargo = "clean", duration_s: float = 8.0) -> None:
        """A truck enters the portal now and takes `duration_s` simulated seconds to pass."""
        self.passages_done.clear()
        self.physics.begin(cargo, duration_s)

    def set_fault(self, on: bool = True) -> None:
        self.fault = on

    def set_tamper(self, on: bool = True) -> None:
        self.tamper = on

    def freeze_heartbeat(self, on: bool = True) -> None:
        self.heartbeat_frozen = on

    def set_exception_responses(self, on: bool = True) -> None:
        """Answer every request with exception 4 (device failure)."""
        self.exception_responses = on

    def set_stalled(self, on: bool = True) -> None:
        """Take requests but never answer them (until unset or stopped)."""
        self.stalled = on
        if not on:
            self._release.set()
            self._release = asyncio.Event()

    def set_bad_values(self, on: bool = True) -> None:
        """Publish a status word with bits no monitor defines."""
        self.bad_values = on

    # --- server ---------------------------------------------------------------------------

    def _device(self) -> SimDevice:
        regs = self.registers
        last = max(
            regs.status, regs.heartbeat, regs.occupancy_id,
            regs.gamma_counts + 2 * regs.gamma_channels,
            regs.gamma_background + 2 * regs.gamma_channels,
            regs.neutron_counts + 2 * regs.neutron_channels,
            regs.neutron_background + 2 * regs.neutron_channels,
        )
        block = SimData(0, count=last + 1, values=0, datatype=DataType.REGISTERS)
        return SimDevice(id=self.device_id, simdata=[block], action=self._action)

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if self.stalled:
            await self._release.wait()
        if self.exception_responses:
            return ExcCodes.DEVICE_FAILURE
        return None

    async def start(self) -> None:
        self._server = ModbusTcpServer(self._device(), address=(self.host, self.port))
        await self._server.serve_forever(background=True)
        await self._publish()
        self._task = asyncio.create_task(self._sample_loop(), name=f"hwsim rpm {self.port}")

    async def stop(self) -> None:
        """Stop sampling and close the server and every client connection."""
        self._release.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()
            await asyncio.sleep(0)

    async def __aenter__(self) -> SimulatedRpm:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _sample_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sample_period_s)
            self.physics.sample()
            await self._publish()
            if self.physics.advance():
                await self._publish()
                self.passages_done.set()

    def status_word(self) -> int:
        physics = self.physics
        status = (
            int(physics.occupied)
            | int(physics.gamma_alarm) << 1
            | int(physics.neutron_alarm) << 2
            | int(self.fault) << 3
            | int(self.tamper) << 4
        )
        return status | 0xF000 if self.bad_values else status

    async def _publish(self) -> None:
        server = self._server
        if server is None:
            return
        if not self.heartbeat_frozen:
            self.heartbeat = (self.heartbeat + 1) % 65536
        regs, physics = self.registers, self.physics
        gamma = physics.gamma_window() if physics._gamma_recent else np.zeros(regs.gamma_channels)
        neutron = (
            physics.neutron_window() if physics._neutron_recent else np.zeros(regs.neutron_channels)
        )
        writes = {
            regs.status: [self.status_word()],
            regs.heartbeat: [self.heartbeat],
            regs.occupancy_id: [physics.occupancy_id],
            regs.gamma_counts: _uint32s(gamma[: regs.gamma_channels]),
            regs.gamma_background: _float32s(physics.gamma_estimate[: regs.gamma_channels]),
        }
        if regs.neutron_channels:
            writes[regs.neutron_counts] = _uint32s(neutron[: regs.neutron_channels])
            writes[regs.neutron_background] = _float32s(
                physics.neutron_estimate[: regs.neutron_channels]
            )
        for address, values in writes.items():
            await server.async_setValues(self.device_id, FC_INPUT_REGISTERS, address, values)


def _uint32s(values: np.ndarray) -> list[int]:
    return [word for value in values for word in uint32_to_registers(int(value))]


def _float32s(values: np.ndarray) -> list[int]:
    return [word for value in values for word in float32_to_registers(float(value))]
