"""Tag reports as sllurp hands them over, turned into deduplicated `TagRead`s.

A reader reports an EPC once per read, many times a second: reads of one (EPC, antenna) within
a window are one read. Reader clocks may be unset (year 2000) or count from boot; the read time
is always the host's, and the reader's time is kept only when it agrees with the host clock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gated.domain import TagRead

_LOGGER = logging.getLogger(__name__)


class BadTagReport(ValueError):
    """A TagReportData that cannot be turned into a read (no EPC, wrong types)."""


@dataclass
class ReadStats:
    reports: int = 0  # TagReportData entries received
    emitted: int = 0  # reads passed on after deduplication
    duplicates: int = 0
    bad_reports: int = 0
    uptime_timestamps: int = 0
    clock_rejected: int = 0
    overload_dropped: int = 0


class Deduplicator:
    """Passes the first read of a key, then nothing for that key until `window_s` has passed."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._last: dict[tuple[bytes, int], float] = {}
        self._next_prune = 0.0

    def admit(self, key: tuple[bytes, int], now: float) -> bool:
        last = self._last.get(key)
        if last is not None and now - last < self.window_s:
            return False
        self._last[key] = now
        if now >= self._next_prune:
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        self._last = {key: at for key, at in self._last.items() if at > horizon}
        self._next_prune = now + max(self.window_s, 1.0)

    def __len__(self) -> int:
        return len(self._last)


def _epc_bytes(tag: Mapping[str, Any]) -> bytes:
    epc = tag.get("EPC")
    if epc is None:
        epc = tag.get("EPC-96")
    if isinstance(epc, str):
        epc = epc.encode("ascii")
    if not isinstance(epc, bytes | bytearray) or not epc:
        raise BadTagReport(f"tag report without an EPC: {sorted(tag)}")
    return bytes(epc)


class TagReportNormaliser:
    """Turns sllurp tag dicts of one reader into `TagRead`s, deduplicated per (EPC, antenna)."""

    def __init__(
        self,
        reader: str,
        dedupe_window_s: float,
        default_antenna: int = 0,
        max_clock_skew_s: float = 300.0,
        label: str = "",
    ) -> None:
        self.reader = reader
        self.default_antenna = default_antenna
        self.max_clock_skew_us = int(max_clock_skew_s * 1_000_000)
        self.label = label or reader
        self.dedupe = Deduplicator(dedupe_window_s)
        self.stats = ReadStats()
        self._clock_warned = False
        self._bad_warned = False

    def normalise(
        self, tag: Mapping[str, Any], host_time: float, monotonic: float
    ) -> TagRead | None:
        """The read for one tag dict, or None when it repeats a recent read or is bad."""
        self.stats.reports += 1
        try:
            epc = _epc_bytes(tag)
            antenna = int(tag.get("AntennaID", self.default_antenna))
        except (BadTagReport, AttributeError, TypeError, ValueError) as exc:
            self._count_bad(exc)
            return None
        if not self.dedupe.admit((epc, antenna), monotonic):
            self.stats.duplicates += 1
            return None
        try:
            read = self._build(tag, epc, antenna, host_time)
        except (TypeError, ValueError, UnicodeDecodeError) as exc:
            self._count_bad(exc)
            return None
        self.stats.emitted += 1
        return read

    def _build(
        self, tag: Mapping[str, Any], epc: bytes, antenna: int, host_time: float
    ) -> TagRead:
        epc_hex = epc.decode("ascii").upper()
        int(epc_hex, 16)  # raises ValueError when it is not hex
        rssi = tag.get("PeakRSSI")
        count = tag.get("TagSeenCount", 1)
        return TagRead(
            epc=epc_hex,
            reader=self.reader,
            antenna=antenna,
            rssi=float(rssi) if rssi is not None else None,
            seen_at=datetime.fromtimestamp(host_time, UTC),
            reader_time=self._reader_time(tag, host_time),
            seen_count=int(count) if count else 1,
        )

    def _reader_time(self, tag: Mapping[str, Any], host_time: float) -> datetime | None:
        stamp = tag.get("FirstSeenTimestampUTC", tag.get("LastSeenTimestampUTC"))
        if stamp is None:
            if "FirstSeenTimestampUptime" in tag or "LastSeenTimestampUptime" in tag:
                self.stats.uptime_timestamps += 1
            return None
        skew_us = int(stamp) - int(host_time * 1_000_000)
        if abs(skew_us) > self.max_clock_skew_us:
            self.stats.clock_rejected += 1
            if not self._clock_warned:
                self._clock_warned = True
                _LOGGER.warning(
                    "%s: reader clock is %.0f s off the host clock; using host time for reads",
                    self.label,
                    skew_us / 1_000_000,
                )
            return None
        return datetime.fromtimestamp(int(stamp) / 1_000_000, UTC)

    def _count_bad(self, exc: Exception) -> None:
        self.stats.bad_reports += 1
        if not self._bad_warned:
            self._bad_warned = True
            _LOGGER.warning("%s: bad tag report ignored (%s); counting further ones", self.label,
                            exc)
