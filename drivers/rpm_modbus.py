"""A radiation portal monitor read over Modbus TCP, with the register map from the configuration.

Each poll reads status, heartbeat, occupancy number, counts (1 s sums, 32-bit, low word first)
and backgrounds (floats, low word first). A heartbeat change means a new sample: while
occupied, each one is judged by the daemon's rule against the background latched when the
occupancy began. Any failed request, implausible value, missing heartbeat, fault or tamper makes
the monitor not healthy, and an occupancy running at that moment ends incomplete.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from drivers.modbus import (
    Backoff,
    ModbusConnection,
    ModbusError,
    float32_low_first,
    read_plan,
    uint32_low_first,
)
from drivers.rpm_base import RadiationMonitor
from drivers.rpm_lines import MAX_COUNT, Occupancy
from gated.config import RpmConfig
from gated.domain import utcnow

_LOGGER = logging.getLogger(__name__)

STATUS_OCCUPIED = 1 << 0
STATUS_GAMMA_ALARM = 1 << 1
STATUS_NEUTRON_ALARM = 1 << 2
STATUS_FAULT = 1 << 3
STATUS_TAMPER = 1 << 4
STATUS_KNOWN = 0b11111


@dataclass(frozen=True)
class RpmSnapshot:
    """One poll of the monitor's registers, checked for plausibility."""

    status: int
    heartbeat: int
    occupancy_id: int
    gamma: tuple[int, ...]
    neutron: tuple[int, ...]
    gamma_background: tuple[float, ...]
    neutron_background: tuple[float, ...]

    @property
    def occupied(self) -> bool:
        return bool(self.status & STATUS_OCCUPIED)


class ModbusRadiationMonitor(RadiationMonitor):
    """The Modbus TCP transport of a radiation portal monitor."""

    def __init__(self, lane: str, config: RpmConfig, sigma: float, **callbacks: Any) -> None:
        super().__init__(lane, config, sigma, **callbacks)
        assert config.host is not None and config.port is not None  # checked by RpmConfig
        self._connection = ModbusConnection(
            f"rpm-{self.lane}", config.host, config.port, config.device_id, config.timeout_s
        )
        self._current: Occupancy | None = None
        self._seen_idle = False  # an occupancy counts as whole only if it began in our sight
        self._last_heartbeat: int | None = None
        self._heartbeat_changed = time.monotonic()
        self.errors = 0
        self.last_error: str | None = None

    async def run(self) -> None:
        backoff = Backoff(cap_s=self.config.backoff_cap_s)
        try:
            while True:
                try:
                    await self._connection.connect()
                    await self._poll_forever(backoff)
                except ModbusError as exc:
                    delay = backoff.next()
                    self._lost(exc, delay)
                    await self._connection.close()
                    await asyncio.sleep(delay)
        finally:
            self._cut("stopped")
            await self._connection.close()

    async def _poll_forever(self, backoff: Backoff) -> None:
        self._seen_idle = False
        self._last_heartbeat = None
        self._heartbeat_changed = time.monotonic()
        budget = self.config.timeout_s * 4
        while True:
            try:
                async with asyncio.timeout(budget):
                    snapshot = await self.read_snapshot()
            except TimeoutError as exc:
                raise ModbusError("timeout", f"poll took longer than {budget:.1f} s") from exc
            self._process(snapshot)
            backoff.reset()
            await asyncio.sleep(self.config.poll_interval_s)

    async def read_snapshot(self) -> RpmSnapshot:
        """Read the map; raise ModbusError('bad_value') for values no monitor would send."""
        regs = self.config.registers
        gamma_n, neutron_n = regs.gamma_channels, regs.neutron_channels
        fields = [
            (regs.status, 1),
            (regs.heartbeat, 1),
            (regs.occupancy_id, 1),
            (regs.gamma_counts, 2 * gamma_n),
            (regs.gamma_background, 2 * gamma_n),
        ]
        if neutron_n:
            fields.append((regs.neutron_counts, 2 * neutron_n))
            fields.append((regs.neutron_background, 2 * neutron_n))
        memory: dict[int, int] = {}
        for address, count in read_plan(fields):
            values = await self._connection.read_input_registers(address, count)
            memory.update(zip(range(address, address + count), values, strict=True))

        def pairs(start: int, n: int) -> list[tuple[int, int]]:
            return [(memory[start + 2 * i], memory[start + 2 * i + 1]) for i in range(n)]

        snapshot = RpmSnapshot(
            status=memory[regs.status],
            heartbeat=memory[regs.heartbeat],
            occupancy_id=memory[regs.occupancy_id],
            gamma=tuple(uint32_low_first(*p) for p in pairs(regs.gamma_counts, gamma_n)),
            neutron=tuple(uint32_low_first(*p) for p in pairs(regs.neutron_counts, neutron_n)),
            gamma_background=tuple(
                float32_low_first(*p) for p in pairs(regs.gamma_background, gamma_n)
            ),
            neutron_background=tuple(
                float32_low_first(*p) for p in pairs(regs.neutron_background, neutron_n)
            ),
        )
        self._check(snapshot)
        return snapshot

    def _check(self, snapshot: RpmSnapshot) -> None:
        where = self._connection.address
        if snapshot.status & ~STATUS_KNOWN:
            raise ModbusError(
                "bad_value", f"{where}: status {snapshot.status:#06x} has unknown bits"
            )
        for count in snapshot.gamma + snapshot.neutron:
            if count > MAX_COUNT:
                raise ModbusError("bad_value", f"{where}: count {count} is not plausible")
        for value in snapshot.gamma_background + snapshot.neutron_background:
            if not math.isfinite(value) or not 0 <= value <= MAX_COUNT:
                raise ModbusError("bad_value", f"{where}: background {value!r} is not plausible")

    def _process(self, snapshot: RpmSnapshot) -> None:
        now = time.monotonic()
        new_sample = snapshot.heartbeat != self._last_heartbeat
        if new_sample:
            self._last_heartbeat = snapshot.heartbeat
            self._heartbeat_changed = now
        heartbeat_missing = now - self._heartbeat_changed > self.config.heartbeat_timeout_s

        problems = []
        if snapshot.status & STATUS_FAULT:
            problems.append("monitor fault")
        if snapshot.status & STATUS_TAMPER:
            problems.append("tamper")
        if heartbeat_missing:
            problems.append(f"heartbeat missing for {self.config.heartbeat_timeout_s:g} s")
            self._cut("heartbeat_missing")
            self._seen_idle = False
        self._set_health(not problems, "; ".join(problems))

        if not snapshot.occupied and not heartbeat_missing:
            self._seen_idle = True
        if snapshot.occupied and not heartbeat_missing:
            self._occupancy_sample(snapshot, new_sample)
        elif not snapshot.occupied and self._current is not None:
            occupancy, self._current = self._current, None
            occupancy.occupancy_id = snapshot.occupancy_id
            complete = "joined_mid_occupancy" not in occupancy.faults
            occupancy.finish(complete=complete, at=utcnow(), line_no=snapshot.heartbeat)
            self._set_occupied(False)
            self._emit(occupancy.to_scan(self.lane))

    def _occupancy_sample(self, snapshot: RpmSnapshot, new_sample: bool) -> None:
        occupancy = self._current
        if occupancy is None:
            occupancy = self._current = Occupancy(
                started_at=utcnow(),
                first_line=snapshot.heartbeat,
                gamma_background=snapshot.gamma_background,
                neutron_background=snapshot.neutron_background or None,
                n_sigma=self.sigma,
                gamma_window=1,  # the registers already hold 1 s sums
                neutron_window=1,
            )
            self._set_occupied(True)
            if not self._seen_idle:
                # the truck was in the portal before we could see it: its start is missing
                occupancy.add_fault("joined_mid_occupancy")
            _LOGGER.debug("lane %s: RPM occupancy started", self.lane)
        occupancy.monitor_gamma_alarm |= bool(snapshot.status & STATUS_GAMMA_ALARM)
        occupancy.monitor_neutron_alarm |= bool(snapshot.status & STATUS_NEUTRON_ALARM)
        if snapshot.status & STATUS_FAULT:
            occupancy.add_fault("monitor_fault")
        if snapshot.status & STATUS_TAMPER:
            occupancy.add_fault("tamper")
        if new_sample:
            occupancy.add_sample(snapshot.gamma, snapshot.neutron, utcnow())

    def _cut(self, reason: str) -> None:
        occupancy, self._current = self._current, None
        if occupancy is None:
            return
        occupancy.add_fault(reason)
        occupancy.finish(complete=False, at=utcnow(), line_no=0)
        self._set_occupied(False)
        self._emit(occupancy.to_scan(self.lane))

    def _lost(self, exc: ModbusError, delay: float) -> None:
        self.errors += 1
        self.last_error = str(exc)
        self._cut(exc.kind if exc.kind != "connection" else "connection_lost")
        # the loss itself is logged once by _set_health; every retry only at debug level
        _LOGGER.debug("lane %s: RPM %s: %s; retrying in %.1f s", self.lane, self.where, exc, delay)
        self._set_health(False, f"{exc.kind.replace('_', ' ')}: {exc}")
