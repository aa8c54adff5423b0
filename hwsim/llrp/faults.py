"""Switchable faults of the simulated LLRP reader, modelled on failures seen with real readers.

Flags stay on until switched off; one-shot faults (drop, truncated parameter, unknown message)
are methods of `SimulatedReader`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    refuse: bool = False
    """Refuse every client the LLRP way: ConnectionAttemptEvent 'client connection exists'."""

    stop_keepalives: bool = False
    """Send no KEEPALIVE messages (reports still go out if tags are present)."""

    silent: bool = False
    """Send nothing at all while keeping the TCP connection open (a hung reader)."""

    split_segments: bool = False
    """Write every message in small pieces, each in its own TCP segment."""

    coalesce: bool = False
    """Gather messages and write them together, cut at points that ignore message bounds."""

    uptime_timestamps: bool = False
    """Timestamps in microseconds since reader boot (Uptime) instead of UTC."""

    unset_clock: bool = False
    """A reader whose clock was never set: UTC timestamps that start at 2000-01-01 at boot."""

    incomplete_capabilities: bool = False
    """Capabilities without the regulatory part (no power table, no RF modes)."""

    def clear(self) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, False)
