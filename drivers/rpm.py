"""Radiation portal monitors: one interface for the lane, whatever the monitor speaks.

    monitor = open_monitor("1", lane_config.rpm, sigma=site.rpm_sigma)
    task = asyncio.create_task(monitor.run(), name="lane 1 rpm")
    await monitor.occupied_event.wait()        # a truck entered the portal
    scan = await monitor.scans.get()           # RadiationScan at the end of the occupancy
    if not monitor.healthy: ...                # fail closed; monitor.health_reason says why

`on_scan`, `on_health` (a DeviceHealth once down and once up) and `on_occupancy` callbacks may
be passed instead of reading the queue and properties. A scan cut short by a fault or a lost
connection arrives with `complete=False`; `RadiationScan.clean` is False for it.
"""

from __future__ import annotations

from drivers.rpm_ascii import AsciiRadiationMonitor
from drivers.rpm_base import (
    HealthCallback,
    OccupancyCallback,
    RadiationMonitor,
    ScanCallback,
)
from drivers.rpm_modbus import ModbusRadiationMonitor
from gated.config import RpmConfig

__all__ = ["RadiationMonitor", "open_monitor"]


def open_monitor(
    lane: str,
    config: RpmConfig,
    sigma: float,
    *,
    on_scan: ScanCallback | None = None,
    on_health: HealthCallback | None = None,
    on_occupancy: OccupancyCallback | None = None,
) -> RadiationMonitor:
    """The monitor of a lane; `sigma` is n of the daemon's rule (config.sigma wins if set)."""
    n_sigma = config.sigma if config.sigma is not None else sigma
    kind = ModbusRadiationMonitor if config.transport == "modbus" else AsciiRadiationMonitor
    return kind(
        lane,
        config,
        n_sigma,
        on_scan=on_scan,
        on_health=on_health,
        on_occupancy=on_occupancy,
    )
