"""What every radiation portal monitor transport shares: health, occupancy and scan delivery.

A lane sees one `RadiationMonitor` whatever the wire: it awaits `run()`, reads `healthy` and
`health_reason` (fail closed when not healthy), waits on `occupied_event`, and takes a
`RadiationScan` from `scans` (or the `on_scan` callback) at the end of every occupancy.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable

from gated.config import RpmConfig
from gated.domain import DeviceHealth, RadiationScan

_LOGGER = logging.getLogger(__name__)

DEVICE = "rpm"

ScanCallback = Callable[[RadiationScan], None]
HealthCallback = Callable[[DeviceHealth], None]
OccupancyCallback = Callable[[bool], None]


class RadiationMonitor(abc.ABC):
    """Base of the Modbus and ASCII monitors; not healthy until the device has answered."""

    def __init__(
        self,
        lane: str,
        config: RpmConfig,
        sigma: float,
        *,
        on_scan: ScanCallback | None = None,
        on_health: HealthCallback | None = None,
        on_occupancy: OccupancyCallback | None = None,
    ) -> None:
        self.lane = lane
        self.config = config
        self.sigma = sigma
        self.scans: asyncio.Queue[RadiationScan] = asyncio.Queue()
        self.occupied_event = asyncio.Event()
        self._on_scan = on_scan
        self._on_health = on_health
        self._on_occupancy = on_occupancy
        self._healthy = False
        self._reason = "not connected yet"
        self._reported: bool | None = None

    @property
    def healthy(self) -> bool:
        """True only while the monitor answers, has a heartbeat, and reports no fault/tamper."""
        return self._healthy

    @property
    def health_reason(self) -> str:
        """Why the monitor is not healthy ('' when it is)."""
        return "" if self._healthy else self._reason

    @property
    def problem(self) -> str | None:
        """Why the monitor cannot be trusted right now, or None (gated.ports.MonitorPort)."""
        return None if self._healthy else self._reason

    @property
    def occupied(self) -> bool:
        return self.occupied_event.is_set()

    @property
    def where(self) -> str:
        return self.config.serial_port or f"{self.config.host}:{self.config.port}"

    @abc.abstractmethod
    async def run(self) -> None:
        """Talk to the monitor until cancelled, reconnecting with back-off."""

    def _set_health(self, up: bool, reason: str = "") -> None:
        self._healthy = up
        self._reason = reason
        if self._reported is up:
            return
        self._reported = up
        if up:
            _LOGGER.info("lane %s: RPM %s healthy", self.lane, self.where)
        else:
            _LOGGER.warning("lane %s: RPM %s not healthy: %s", self.lane, self.where, reason)
        if self._on_health is not None:
            self._on_health(DeviceHealth(lane=self.lane, device=DEVICE, up=up, detail=reason))

    def _set_occupied(self, occupied: bool) -> None:
        if occupied == self.occupied_event.is_set():
            return
        if occupied:
            self.occupied_event.set()
        else:
            self.occupied_event.clear()
        if self._on_occupancy is not None:
            self._on_occupancy(occupied)

    def _emit(self, scan: RadiationScan) -> None:
        _LOGGER.info(
            "lane %s: RPM occupancy %s ended: %s%s",
            self.lane,
            scan.occupancy_id,
            "clean" if scan.clean else ("ALARM" if scan.alarm else "not clean"),
            f" (faults: {', '.join(scan.faults)})" if scan.faults else "",
        )
        self.scans.put_nowait(scan)
        if self._on_scan is not None:
            self._on_scan(scan)
