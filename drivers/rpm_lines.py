"""The RPM ASCII line protocol: parse lines and put them together into occupancies.

A monitor writes one CSV record per line: a type and counts, e.g. `GB,000188,000206,000262,000243`.
Vendor daily files append a timestamp (`...,2016-05-31 09:32:20.158 -07`); live streams do not.
Records used here:

- GB / NB: gamma / neutron background, counts per second per channel (every ~5 s, idle only).
- GS / GA: one 200 ms gamma sample while occupied; GA when the monitor is in gamma alarm.
- NS / NA: one 1 s neutron sample while occupied; NA when in neutron alarm.
- GX: end of occupancy; the first field is the occupancy number.
- GH / GL / NH: sent in place of a background when it is faulted (gamma high / low, neutron
  high); the fault holds until a normal background of that kind arrives.
- TT / TC: tamper / tamper cleared.  SP: vehicle speed.  NB1: neutron background as floats.
Other record types (vendor extensions such as AS, AX, RW) are counted and otherwise ignored.

This module does no I/O: the live driver and `gated rpm analyze` both feed it lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from drivers.rpm_alarm import (
    GAMMA_SAMPLES_PER_WINDOW,
    NEUTRON_SAMPLES_PER_WINDOW,
    ChannelGroupEvaluator,
)
from gated.domain import RadiationSample, RadiationScan, utcnow

COUNT_RECORDS = frozenset({"GB", "GS", "GA", "NB", "NS", "NA", "GH", "GL", "NH"})
KNOWN_RECORDS = COUNT_RECORDS | {"GX", "TT", "TC", "SP", "NB1"}
FAULT_RECORDS = {
    "GH": "gamma_high_background",
    "GL": "gamma_low_background",
    "NH": "neutron_high_background",
}
_KIND = re.compile(r"^[A-Z]{1,3}[0-9]?$")
_TIMESTAMP = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d+)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_US_TIMESTAMP = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4})[ T](\d{1,2}):(\d{2}):(\d{2})(\.\d+)?\s*([AP]M)?$", re.I
)
MAX_COUNT = 10_000_000  # counts per sample; anything above is a corrupt line, not radiation


class RpmLineError(ValueError):
    """A line that is not a valid record of the protocol."""


@dataclass(frozen=True)
class RpmLine:
    kind: str
    values: tuple[str, ...]
    at: datetime | None = None
    line_no: int = 0

    def counts(self) -> tuple[int, ...]:
        """The integer counts of a count record (GB, GS, NS, ...)."""
        try:
            counts = tuple(int(v) for v in self.values)
        except ValueError as exc:
            raise RpmLineError(f"line {self.line_no}: {self.kind} counts not integers") from exc
        if not counts or any(c < 0 or c > MAX_COUNT for c in counts):
            raise RpmLineError(f"line {self.line_no}: {self.kind} counts out of range")
        return counts

    def floats(self) -> tuple[float, ...]:
        try:
            values = tuple(float(v) for v in self.values)
        except ValueError as exc:
            raise RpmLineError(f"line {self.line_no}: {self.kind} values not numbers") from exc
        if not values or any(not 0 <= v < MAX_COUNT for v in values):
            raise RpmLineError(f"line {self.line_no}: {self.kind} values out of range")
        return values


def _parse_us_timestamp(text: str) -> datetime | None:
    """`05/31/2016 09:32:20.158 PM`: local time without a zone, taken as UTC (only the
    differences between lines matter for pacing and durations)."""
    match = _US_TIMESTAMP.match(text)
    if match is None:
        return None
    month, day, year, hour, minute, second, fraction, half = match.groups()
    hour_24 = int(hour) % 12 + (12 if (half or "").upper() == "PM" else 0) if half else int(hour)
    try:
        at = datetime(int(year), int(month), int(day), hour_24, int(minute), int(second),
                      round(float(fraction or 0) * 1_000_000), tzinfo=UTC)
    except ValueError:
        return None
    return at


def _parse_timestamp(text: str) -> datetime | None:
    match = _TIMESTAMP.match(text.strip())
    if match is None:
        return _parse_us_timestamp(text.strip())
    date, clock, fraction, offset = match.groups()
    at = datetime.fromisoformat(f"{date}T{clock}{(fraction or '')[:7]}")
    if offset in (None, "Z"):
        return at.replace(tzinfo=UTC)
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) >= 4 else 0)
    return at.replace(tzinfo=timezone(sign * timedelta(minutes=minutes)))


def strip_timestamp(text: str) -> tuple[str, datetime | None]:
    """A line without its trailing daily-file timestamp, and that timestamp (or None)."""
    head, _, last = text.strip().rpartition(",")
    at = _parse_timestamp(last) if head else None
    return (head, at) if at is not None else (text.strip(), None)


def parse_line(text: str, line_no: int = 0) -> RpmLine | None:
    """One record; None for a blank line; RpmLineError for anything else that is not a record."""
    text = text.strip().strip("\x00")
    if not text:
        return None
    fields = [f.strip() for f in text.split(",")]
    kind = fields[0].upper()
    if not _KIND.match(kind):
        raise RpmLineError(f"line {line_no}: not a record: {text[:40]!r}")
    values = fields[1:]
    at = _parse_timestamp(values[-1]) if values else None
    if at is not None or (values and ":" in values[-1]):
        # a timestamp; one in a format not known here is dropped rather than read as a count
        values = values[:-1]
    return RpmLine(kind=kind, values=tuple(values), at=at, line_no=line_no)


@dataclass
class Occupancy:
    """One occupancy as the monitor reported it and as the daemon judged it.

    `first_line` / `last_line` are line numbers in an ASCII stream, measurement numbers in N42.
    """

    started_at: datetime | None
    first_line: int
    gamma_background: tuple[float, ...] | None
    neutron_background: tuple[float, ...] | None
    n_sigma: float
    occupancy_id: int | None = None
    ended_at: datetime | None = None
    last_line: int = 0
    complete: bool = False
    monitor_gamma_alarm: bool = False
    monitor_neutron_alarm: bool = False
    faults: list[str] = field(default_factory=list)
    nuclides: list[str] = field(default_factory=list)
    gamma_window: int = GAMMA_SAMPLES_PER_WINDOW
    neutron_window: int = NEUTRON_SAMPLES_PER_WINDOW
    gamma_samples: int = 0
    neutron_samples: int = 0
    profile: list[RadiationSample] = field(default_factory=list)
    _gamma: ChannelGroupEvaluator | None = None
    _neutron: ChannelGroupEvaluator | None = None

    def __post_init__(self) -> None:
        if self.gamma_background is not None:
            self._gamma = ChannelGroupEvaluator(
                self.gamma_background, self.n_sigma, self.gamma_window
            )
        if self.neutron_background is not None:
            self._neutron = ChannelGroupEvaluator(
                self.neutron_background, self.n_sigma, self.neutron_window
            )

    def add_fault(self, fault: str) -> None:
        if fault not in self.faults:
            self.faults.append(fault)

    def add_gamma(self, counts: Sequence[float], at: datetime | None) -> None:
        self.gamma_samples += 1
        if self._gamma is None:
            self.add_fault("no_gamma_background")
        elif len(counts) != len(self._gamma.background):
            self.add_fault("corrupt_data")
        else:
            self._gamma.add(counts)
        if at is not None:
            self.profile.append(RadiationSample(at=at, gamma=tuple(map(float, counts)), neutron=()))

    def add_neutron(self, counts: Sequence[float], at: datetime | None) -> None:
        self.neutron_samples += 1
        if self._neutron is None:
            self.add_fault("no_neutron_background")
        elif len(counts) != len(self._neutron.background):
            self.add_fault("corrupt_data")
        else:
            self._neutron.add(counts)
        if at is not None:
            self.profile.append(RadiationSample(at=at, gamma=(), neutron=tuple(map(float, counts))))

    def add_sample(
        self, gamma: Sequence[float], neutron: Sequence[float], at: datetime
    ) -> None:
        """Gamma and neutron counts of the same instant (a Modbus poll), one profile entry."""
        self.add_gamma(gamma, None)
        if neutron:
            self.add_neutron(neutron, None)
        sample = RadiationSample(
            at=at, gamma=tuple(map(float, gamma)), neutron=tuple(map(float, neutron))
        )
        self.profile.append(sample)

    def finish(self, complete: bool, at: datetime | None, line_no: int) -> Occupancy:
        self.complete = complete
        self.ended_at = at
        self.last_line = line_no
        for group in (self._gamma, self._neutron):
            if group is not None:
                group.finish()
        if not self.gamma_samples:
            self.add_fault("no_gamma_samples")
        elif self._gamma is not None and self._gamma.samples and self._gamma.dead_channels():
            # neutron tubes legitimately count nothing; gamma panels never do
            self.add_fault("gamma_detector_dead")
        return self

    @property
    def gamma_alarm(self) -> bool:
        return self._gamma is not None and self._gamma.alarm

    @property
    def neutron_alarm(self) -> bool:
        return self._neutron is not None and self._neutron.alarm

    @property
    def peak_gamma_sigma(self) -> tuple[float, ...]:
        return self._gamma.peaks() if self._gamma else ()

    @property
    def peak_neutron_sigma(self) -> tuple[float, ...]:
        return self._neutron.peaks() if self._neutron else ()

    @property
    def alarm(self) -> bool:
        return (
            self.monitor_gamma_alarm
            or self.monitor_neutron_alarm
            or self.gamma_alarm
            or self.neutron_alarm
        )

    def to_scan(self, lane: str) -> RadiationScan:
        """The domain event; times missing from the stream become the time of this call."""
        now = utcnow()
        return RadiationScan(
            lane=lane,
            occupancy_id=self.occupancy_id,
            started_at=self.started_at or now,
            ended_at=self.ended_at or now,
            complete=self.complete,
            monitor_gamma_alarm=self.monitor_gamma_alarm,
            monitor_neutron_alarm=self.monitor_neutron_alarm,
            gamma_alarm=self.gamma_alarm,
            neutron_alarm=self.neutron_alarm,
            peak_gamma_sigma=self.peak_gamma_sigma,
            peak_neutron_sigma=self.peak_neutron_sigma,
            faults=tuple(self.faults),
            profile=tuple(self.profile),
        )

    def to_json(self) -> dict[str, object]:
        """What `gated rpm analyze --json` prints for one occupancy."""
        return {
            "id": self.occupancy_id,
            "start": self.started_at.isoformat() if self.started_at else None,
            "end": self.ended_at.isoformat() if self.ended_at else None,
            "first_line": self.first_line,
            "last_line": self.last_line,
            "complete": self.complete,
            "gamma_samples": self.gamma_samples,
            "neutron_samples": self.neutron_samples,
            "gamma_background": _listed(self.gamma_background),
            "neutron_background": _listed(self.neutron_background),
            "peak_gamma_sigma": list(self.peak_gamma_sigma),
            "peak_neutron_sigma": list(self.peak_neutron_sigma),
            "monitor_gamma_alarm": self.monitor_gamma_alarm,
            "monitor_neutron_alarm": self.monitor_neutron_alarm,
            "gamma_alarm": self.gamma_alarm,
            "neutron_alarm": self.neutron_alarm,
            "alarm": self.alarm,
            "faults": list(self.faults),
            **({"nuclides": list(self.nuclides)} if self.nuclides else {}),
        }


def _listed(values: tuple[float, ...] | None) -> list[float] | None:
    return None if values is None else [round(v, 3) for v in values]


class OccupancyTracker:
    """Follows a stream of records; returns each occupancy when it ends.

    Also keeps the monitor's standing state (faults, tamper) for the live driver's health.
    """

    def __init__(self, n_sigma: float) -> None:
        self.n_sigma = n_sigma
        self.gamma_background: tuple[float, ...] | None = None
        self.neutron_background: tuple[float, ...] | None = None
        self.faults: set[str] = set()
        self.tamper = False
        self.current: Occupancy | None = None
        self.lines = 0
        self.bad_lines = 0
        self.ignored: dict[str, int] = {}
        self.last_error: str | None = None

    @property
    def occupied(self) -> bool:
        return self.current is not None

    def feed_text(
        self, text: str, line_no: int = 0, received_at: datetime | None = None
    ) -> Occupancy | None:
        """Parse and take one line; a bad line is counted, marks the occupancy, never raises."""
        try:
            line = parse_line(text, line_no)
        except RpmLineError as exc:
            self._bad(str(exc))
            return None
        if line is None:
            return None
        return self.feed(line, received_at)

    def _bad(self, message: str) -> None:
        self.bad_lines += 1
        self.last_error = message
        if self.current is not None:
            self.current.add_fault("corrupt_data")

    def feed(self, line: RpmLine, received_at: datetime | None = None) -> Occupancy | None:
        self.lines += 1
        at = line.at or received_at
        try:
            return self._dispatch(line, at)
        except RpmLineError as exc:
            self._bad(str(exc))
            return None

    def _dispatch(self, line: RpmLine, at: datetime | None) -> Occupancy | None:
        kind = line.kind
        if kind in ("GB", "NB", "NB1", "GH", "GL", "NH"):
            return self._background(line, at)
        if kind in ("GS", "GA"):
            counts = line.counts()
            occupancy = self._occupancy(line, at)
            occupancy.monitor_gamma_alarm |= kind == "GA"
            occupancy.add_gamma(counts, at)
        elif kind in ("NS", "NA"):
            counts = line.counts()
            occupancy = self._occupancy(line, at)
            occupancy.monitor_neutron_alarm |= kind == "NA"
            occupancy.add_neutron(counts, at)
        elif kind == "GX":
            return self._end(line, at)
        elif kind in ("TT", "TC"):
            self.tamper = kind == "TT"
            if self.tamper and self.current is not None:
                self.current.add_fault("tamper")
        elif kind != "SP":
            self.ignored[kind] = self.ignored.get(kind, 0) + 1
        return None

    def _background(self, line: RpmLine, at: datetime | None) -> Occupancy | None:
        ended = None
        if self.current is not None:
            # backgrounds are only reported while idle: the occupancy ended without its GX
            ended = self.cut("no_end_of_occupancy", at, line.line_no)
        kind = line.kind
        if kind == "GB":
            self.gamma_background = tuple(map(float, line.counts()))
            self.faults -= {FAULT_RECORDS["GH"], FAULT_RECORDS["GL"]}
        elif kind == "NB":
            self.neutron_background = tuple(map(float, line.counts()))
            self.faults.discard(FAULT_RECORDS["NH"])
        elif kind == "NB1":
            values = line.floats()
            if self.neutron_background is None or len(values) == len(self.neutron_background):
                self.neutron_background = values
        else:
            line.counts()
            self.faults.add(FAULT_RECORDS[kind])
        return ended

    def _occupancy(self, line: RpmLine, at: datetime | None) -> Occupancy:
        if self.current is None:
            self.current = Occupancy(
                started_at=at,
                first_line=line.line_no,
                gamma_background=self.gamma_background,
                neutron_background=self.neutron_background,
                n_sigma=self.n_sigma,
            )
            for fault in sorted(self.faults):
                self.current.add_fault(fault)
            if self.tamper:
                self.current.add_fault("tamper")
        return self.current

    def _end(self, line: RpmLine, at: datetime | None) -> Occupancy:
        occupancy = self._occupancy(line, at)
        try:
            occupancy.occupancy_id = int(line.values[0])
        except (IndexError, ValueError):
            occupancy.add_fault("corrupt_data")
        self.current = None
        return occupancy.finish(complete=True, at=at, line_no=line.line_no)

    def cut(self, reason: str, at: datetime | None = None, line_no: int = 0) -> Occupancy | None:
        """End the running occupancy as incomplete (connection lost, stream ended, ...)."""
        occupancy, self.current = self.current, None
        if occupancy is None:
            return None
        occupancy.add_fault(reason)
        return occupancy.finish(complete=False, at=at, line_no=line_no)
