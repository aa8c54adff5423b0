"""Switchable faults of the simulated LLRP reader, modelled on failures seen with real readers.

Flags stay on until switched off; one-shot faults (drop, truncated parameter, unknown message)
are methods of `SimulatedReader`. The class has slots: a misspelled fault name is an error, not
a fault that silently never happens.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
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

    def set(self, name: str, on: bool = True) -> None:
        """Switch a fault by name; unknown names raise AttributeError."""
        if name not in self.__dataclass_fields__:
            raise AttributeError(f"no such fault: {name!r} (known: {', '.join(self.names())})")
        setattr(self, name, on)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(cls.__dataclass_fields__)
