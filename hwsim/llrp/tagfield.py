"""The tags in front of a simulated reader's antennas, scripted over time.

A `Presence` is one tag on one antenna for a while, read at some rate with some RSSI. Scripts
such as a truck driving through a portal or a top-pick lifting a container are sequences of
presences. The field is read by the reader's inventory loop; it never sleeps itself.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


def parse_epc(epc: str) -> bytes:
    """An EPC given as hex (any case, optional spaces or dashes) as bytes; whole 16-bit words."""
    cleaned = epc.replace(" ", "").replace("-", "")
    raw = bytes.fromhex(cleaned)
    if not raw or len(raw) % 2:
        raise ValueError(f"EPC {epc!r} must be a whole number of 16-bit words")
    return raw


@dataclass
class Presence:
    """One tag readable on one antenna from `start` until `end` (None: until removed)."""

    epc: bytes
    antenna: int
    start: float
    end: float | None
    rate: float  # reads per second
    rssi: float  # dBm
    rssi_jitter: float = 2.0
    credit: float = 0.0
    last: float | None = None

    def active(self, now: float) -> bool:
        return self.start <= now and (self.end is None or now < self.end)


@dataclass(frozen=True)
class FieldRead:
    epc: bytes
    antenna: int
    rssi: int


class TagField:
    """Tags entering and leaving antennas; `reads(now, antennas)` yields what a reader sees."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, seed: int | None = None
    ) -> None:
        self.clock = clock
        self._presences: list[Presence] = []
        self._lock = threading.Lock()  # the world simulator may script from another thread
        self._random = random.Random(seed)

    def show(
        self,
        epc: str | bytes,
        antenna: int = 1,
        duration_s: float | None = None,
        rate: float = 20.0,
        rssi: float = -55.0,
        delay_s: float = 0.0,
        rssi_jitter: float = 2.0,
    ) -> Presence:
        """Put a tag in front of an antenna for `duration_s` (None: until removed)."""
        raw = parse_epc(epc) if isinstance(epc, str) else bytes(epc)
        if rate < 0:
            raise ValueError("rate must not be negative")
        start = self.clock() + delay_s
        end = None if duration_s is None else start + duration_s
        presence = Presence(raw, antenna, start, end, rate, rssi, rssi_jitter)
        with self._lock:
            self._presences.append(presence)
        return presence

    def remove(self, epc: str | bytes, antenna: int | None = None) -> int:
        """Take a tag away (from one antenna or all); returns how many presences ended."""
        raw = parse_epc(epc) if isinstance(epc, str) else bytes(epc)
        with self._lock:
            keep = [
                p for p in self._presences
                if not (p.epc == raw and (antenna is None or p.antenna == antenna))
            ]
            removed = len(self._presences) - len(keep)
            self._presences = keep
        return removed

    def clear(self) -> None:
        with self._lock:
            self._presences = []

    def drive_through(
        self,
        epc: str | bytes,
        antennas: Iterable[int] = (1, 2),
        duration_s: float = 2.5,
        rate: float = 20.0,
        rssi: float = -58.0,
        delay_s: float = 0.0,
    ) -> list[Presence]:
        """A truck passing a portal: the tag crosses each antenna in turn, overlapping a bit."""
        antennas = list(antennas)
        step = duration_s / (len(antennas) + 1)
        return [
            self.show(epc, antenna, 2 * step, rate, rssi, delay_s=delay_s + i * step)
            for i, antenna in enumerate(antennas)
        ]

    def active(self) -> list[Presence]:
        now = self.clock()
        with self._lock:
            return [p for p in self._presences if p.active(now)]

    def reads(self, antennas: Iterable[int] | None = None) -> list[FieldRead]:
        """The reads since the last call: each active presence yields rate x elapsed reads."""
        now = self.clock()
        wanted = None if antennas is None else set(antennas)
        found: list[FieldRead] = []
        with self._lock:
            for presence in self._presences:
                if wanted is not None and presence.antenna not in wanted:
                    continue
                if now < presence.start:
                    continue
                # reads up to now, or up to the moment the tag left since the last call
                until = now if presence.end is None else min(now, presence.end)
                since = presence.start if presence.last is None else presence.last
                presence.last = until
                presence.credit += presence.rate * max(0.0, until - since)
                count = int(presence.credit)
                presence.credit -= count
                for _ in range(count):
                    jitter = self._random.uniform(-presence.rssi_jitter, presence.rssi_jitter)
                    found.append(
                        FieldRead(presence.epc, presence.antenna, round(presence.rssi + jitter))
                    )
            self._presences = [p for p in self._presences if not _finished(p, now)]
        return found


def _finished(presence: Presence, now: float) -> bool:
    """Gone and fully read; a presence on an antenna nobody inventories expires a minute after."""
    if presence.end is None:
        return False
    if presence.last is not None:
        return presence.last >= presence.end
    return now > presence.end + 60.0
