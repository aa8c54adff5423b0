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
import logging
import math
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pymodbus.simulator import DataType, SimData

from drivers.modbus import float32_to_registers, uint32_to_registers
from drivers.rpm_alarm import GAMMA_SAMPLES_PER_WINDOW, exceeds
from drivers.rpm_lines import RpmLine, RpmLineError, parse_line, strip_timestamp
from gated.config import RpmRegisterMap
from hwsim.modbus_device import FC_INPUT_REGISTERS, SimulatedModbusDevice

_LOGGER = logging.getLogger(__name__)

Cargo = Literal["clean", "nuisance", "source", "neutron_source"]
SAMPLE_S = 0.2  # simulated seconds per gamma sample
GAMMA_BACKGROUNDS = (380.0, 380.0, 405.0, 370.0, 390.0, 400.0, 385.0, 375.0)  # cps per panel
NEUTRON_BACKGROUNDS = (3.6, 2.6, 3.1, 2.9)  # cps per tube


@dataclass
class Passage:
    cargo: Cargo
    samples: int
    done: int = 0


class PortalPhysics:
    """Counts of a 4-gamma / 2-neutron portal, one 200 ms sample at a time."""

    def __init__(
        self,
        gamma_background: tuple[float, ...] = GAMMA_BACKGROUNDS[:4],
        neutron_background: tuple[float, ...] = NEUTRON_BACKGROUNDS[:2],
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
        if not self._gamma_recent:
            return np.zeros(len(self.gamma_background))
        return np.sum(np.array(self._gamma_recent), axis=0)

    def neutron_window(self) -> np.ndarray:
        if not self._neutron_recent:
            return np.zeros(len(self.neutron_background))
        return np.sum(np.array(self._neutron_recent), axis=0)


def read_recording(path: str | Path) -> list[str]:
    """A recording is at most a day of lines (a few MB): read it whole before pacing it."""
    return Path(path).read_text(encoding="utf-8-sig", errors="replace").splitlines()


def _pause_before(kind: str) -> float:
    """The protocol's rhythm for files without timestamps: 200 ms per gamma sample, 5 s
    between background reports."""
    return {"GS": SAMPLE_S, "GA": SAMPLE_S, "GB": 5.0, "GH": 5.0, "GL": 5.0}.get(kind, 0.0)


async def paced_lines(
    path: str | Path, speed: float = 1.0, max_gap_s: float | None = None
) -> AsyncIterator[str]:
    """The lines of a recording without timestamps, each at its time divided by `speed`.

    Pauses come from the timestamps, or from the protocol's rhythm when there are none;
    `max_gap_s` shortens the quiet between trucks (in recording seconds).
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    recording_s = 0.0
    previous = None
    for index, raw in enumerate(read_recording(path)):
        line, at = strip_timestamp(raw)
        if not line:
            continue
        gap = _pause_before(line.split(",")[0])
        if at is not None:
            gap = (at - previous).total_seconds() if previous is not None else 0.0
            previous = at
        if max_gap_s is not None:
            gap = min(gap, max_gap_s)
        recording_s += max(gap, 0.0)
        # sleep against a schedule, not per line: thousands of tiny sleeps would drift
        ahead = started + recording_s / speed - loop.time()
        if ahead > 0.002:
            await asyncio.sleep(ahead)
        elif index % 200 == 0:
            await asyncio.sleep(0)
        yield line


class SimulatedRpm(SimulatedModbusDevice):
    """The Modbus TCP monitor on host:`port`."""

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
        super().__init__(host, port, device_id, sample_period_s, f"rpm {port}")
        self.registers = registers or RpmRegisterMap()
        self.physics = physics or PortalPhysics(
            gamma_background=GAMMA_BACKGROUNDS[: self.registers.gamma_channels],
            neutron_background=NEUTRON_BACKGROUNDS[: self.registers.neutron_channels],
            seed=seed,
        )
        self.fault = False
        self.tamper = False
        self.heartbeat_frozen = False
        self.bad_values = False
        self.heartbeat = 0
        self.passage_ended = asyncio.Event()
        self._sampling = False
        self._replaying = False

    # --- the world's handles --------------------------------------------------------------

    def begin_occupancy(self, cargo: Cargo = "clean", duration_s: float = 8.0) -> None:
        """A truck enters the portal now and takes `duration_s` simulated seconds to pass."""
        self.passage_ended.clear()
        self.physics.begin(cargo, duration_s)

    def set_fault(self, on: bool = True) -> None:
        self.fault = on

    def set_tamper(self, on: bool = True) -> None:
        self.tamper = on

    def freeze_heartbeat(self, on: bool = True) -> None:
        self.heartbeat_frozen = on

    def set_bad_values(self, on: bool = True) -> None:
        """Publish a status word with bits no monitor defines."""
        self.bad_values = on

    # --- device ---------------------------------------------------------------------------

    def device_blocks(self) -> list[SimData]:
        regs = self.registers
        last = max(
            regs.status, regs.heartbeat, regs.occupancy_id,
            regs.gamma_counts + 2 * regs.gamma_channels,
            regs.gamma_background + 2 * regs.gamma_channels,
            regs.neutron_counts + 2 * regs.neutron_channels,
            regs.neutron_background + 2 * regs.neutron_channels,
        )
        return [SimData(0, count=last + 1, values=0, datatype=DataType.REGISTERS)]

    async def cycle(self) -> None:
        """One 200 ms sample of the portal (the first cycle only publishes)."""
        if self._replaying:
            if not self.physics.occupied:
                await self._publish()  # idle in the recording: only the heartbeat moves
            return
        if self._sampling:
            self.physics.sample()
            await self._publish()
            if self.physics.advance():
                await self._publish()
                self.passage_ended.set()
        else:
            self._sampling = True
            await self._publish()

    async def replay(
        self, path: str | Path, speed: float = 1.0, max_gap_s: float | None = None
    ) -> int:
        """Play a recorded ASCII-protocol file through the register map; returns its lines.

        Channels beyond the map's `gamma_channels` / `neutron_channels` are left out.
        """
        self._replaying = True
        lines = 0
        try:
            async for text in paced_lines(path, speed, max_gap_s):
                lines += 1
                try:
                    line = parse_line(text, lines)
                    if line is not None:
                        await self._replay_line(line)
                except RpmLineError as exc:
                    _LOGGER.debug("hwsim rpm %d: replay skips %s", self.port, exc)
        finally:
            self._replaying = False
            self.physics.passage = None
            self.physics._gamma_recent.clear()
            self.physics._neutron_recent.clear()
        return lines

    async def _replay_line(self, line: RpmLine) -> None:
        physics, kind = self.physics, line.kind
        gamma_n, neutron_n = self.registers.gamma_channels, self.registers.neutron_channels
        if kind in ("GB", "GH", "GL"):
            physics.gamma_estimate = np.array(line.counts()[:gamma_n], dtype=float)
            self.fault = kind != "GB"
        elif kind in ("NB", "NH"):
            physics.neutron_estimate = np.array(line.counts()[:neutron_n], dtype=float)
            self.fault = kind == "NH"
        elif kind == "NB1":
            physics.neutron_estimate = np.array(line.floats()[:neutron_n], dtype=float)
        elif kind in ("TT", "TC"):
            self.tamper = kind == "TT"
        elif kind in ("GS", "GA", "NS", "NA"):
            counts = np.array(line.counts(), dtype=float)
            if physics.passage is None:
                physics.passage = Passage("clean", samples=1 << 30)
                physics.gamma_alarm = physics.neutron_alarm = False
            if kind[0] == "G":
                physics._gamma_recent.append(counts[:gamma_n])
                physics.gamma_alarm |= kind == "GA"
                await self._publish()
            else:
                # a neutron record already covers one second: it is the window
                physics._neutron_recent.clear()
                physics._neutron_recent.append(counts[:neutron_n])
                physics.neutron_alarm |= kind == "NA"
        elif kind == "GX":
            physics.passage = None
            physics.occupancy_id = int(line.values[0]) % 65536 if line.values else 0
            await self._publish()
            self.passage_ended.set()

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
        if not self.heartbeat_frozen:
            self.heartbeat = (self.heartbeat + 1) % 65536
        regs, physics = self.registers, self.physics
        writes = {
            regs.status: [self.status_word()],
            regs.heartbeat: [self.heartbeat],
            regs.occupancy_id: [physics.occupancy_id],
            regs.gamma_counts: _uint32s(physics.gamma_window()[: regs.gamma_channels]),
            regs.gamma_background: _float32s(physics.gamma_estimate[: regs.gamma_channels]),
        }
        if regs.neutron_channels:
            writes[regs.neutron_counts] = _uint32s(
                physics.neutron_window()[: regs.neutron_channels]
            )
            writes[regs.neutron_background] = _float32s(
                physics.neutron_estimate[: regs.neutron_channels]
            )
        for address, values in writes.items():
            await self.write(FC_INPUT_REGISTERS, address, values)


def _uint32s(values: np.ndarray) -> list[int]:
    return [word for value in values for word in uint32_to_registers(int(value))]


def _float32s(values: np.ndarray) -> list[int]:
    return [word for value in values for word in float32_to_registers(float(value))]
