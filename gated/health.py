"""Device health: one line when a device is lost, one when it recovers, never one per retry."""

from __future__ import annotations

import logging
from collections.abc import Callable

from gated.domain import DeviceHealth

_LOGGER = logging.getLogger(__name__)


class HealthBoard:
    """The latest health of every device; reports only changes to the log and to listeners."""

    def __init__(self) -> None:
        self._devices: dict[tuple[str | None, str], DeviceHealth] = {}
        self._listeners: list[Callable[[DeviceHealth], None]] = []
        self.transitions = 0

    def subscribe(self, listener: Callable[[DeviceHealth], None]) -> None:
        self._listeners.append(listener)

    def report(self, health: DeviceHealth) -> None:
        """Record a device's health; a repeat of the current state changes nothing."""
        key = (health.lane, health.device)
        previous = self._devices.get(key)
        if previous is not None and previous.up == health.up:
            return
        self._devices[key] = health
        where = f"lane {health.lane}: " if health.lane else ""
        if health.up:
            if previous is not None:
                _LOGGER.info("%s%s recovered", where, health.device)
        else:
            _LOGGER.warning("%s%s lost: %s", where, health.device, health.detail or "no detail")
        if previous is not None or not health.up:
            self.transitions += 1
        for listener in self._listeners:
            listener(health)

    def get(self, lane: str | None, device: str) -> DeviceHealth | None:
        return self._devices.get((lane, device))

    def lane_devices(self, lane: str | None) -> list[DeviceHealth]:
        return [h for (l_id, _), h in sorted(self._devices.items(), key=str) if l_id == lane]

    def all(self) -> list[DeviceHealth]:
        return list(self._devices.values())
