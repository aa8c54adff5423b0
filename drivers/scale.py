"""The lane's weigh scale: Mettler Toledo continuous output or SMA (SCP-0499) on a serial line.

Toledo continuous: STX SWA SWB SWC, 6 weight digits, 6 tare digits, CR, then (usually) a
checksum, the two's complement of the 7-bit sum of STX..CR. Lines run 7E1 on many sites, so
each byte arrives with the parity bit set when read as 8N1: bytes are masked to 7 bits. The
parser re-synchronises on STX, so a fragment without its start never becomes a reading.

SMA: LF, status, range, gross/net, motion, reserved, 10-character weight, 3-character unit, CR.

A weight is reported stable only when the indicator shows no motion and not over range, and
the last few gross values agree within a tolerance: a truck still rolling is never stable.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from drivers.serial_line import HealthCallback, SerialLine
from gated.config import ScaleConfig
from gated.domain import WeightReading, utcnow

_LOGGER = logging.getLogger(__name__)

STX = 0x02
CR = 0x0D
LF = 0x0A
LB_TO_KG = 0.45359237
TOLEDO_LENGTH = 17  # STX .. CR
SMA_LENGTH = 18  # between LF and CR
_UNITS = {"kg": 1.0, "lb": LB_TO_KG, "t": 1000.0, "g": 0.001}


@dataclass(frozen=True)
class ScaleFrame:
    """One decoded indicator message, weights already in kilograms."""

    weight_kg: float  # displayed weight, signed: gross, or net when `net`
    tare_kg: float | None
    net: bool
    motion: bool
    over_range: bool

    @property
    def gross_kg(self) -> float | None:
        if not self.net:
            return self.weight_kg
        return None if self.tare_kg is None else self.weight_kg + self.tare_kg


def toledo_checksum(frame: bytes) -> int:
    """Two's complement of the 7-bit sum of STX..CR."""
    return -sum(frame) & 0x7F


def _digits(field_bytes: bytes) -> int | None:
    text = field_bytes.replace(b" ", b"0")
    return int(text) if text.isdigit() else None


def decode_toledo(frame: bytes) -> ScaleFrame | None:
    """STX..CR of one Toledo message (7-bit bytes); None if it is not one."""
    if len(frame) != TOLEDO_LENGTH or frame[0] != STX or frame[16] != CR:
        return None
    swa, swb = frame[1], frame[2]
    weight, tare = _digits(frame[4:10]), _digits(frame[10:16])
    if weight is None or tare is None:
        return None
    scale = 10.0 ** (2 - (swa & 0x07))  # code 0: x100, 2: units, 4: two decimals
    unit = 1.0 if swb & 0x10 else LB_TO_KG
    sign = -1.0 if swb & 0x02 else 1.0
    return ScaleFrame(
        weight_kg=sign * weight * scale * unit,
        tare_kg=tare * scale * unit,
        net=bool(swb & 0x01),
        motion=bool(swb & 0x08),
        over_range=bool(swb & 0x04),
    )


def decode_sma(line: bytes) -> ScaleFrame | None:
    """The 18 characters between LF and CR of one SMA message; None if it is not one."""
    if len(line) != SMA_LENGTH:
        return None
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return None
    status, _range, mode, motion = text[0], text[1], text[2], text[3]
    unit = _UNITS.get(text[15:18].strip().lower())
    if unit is None or mode not in "GNgn":
        return None  # tare readouts and unknown units give no gross weight
    try:
        weight = float(text[5:15].replace(" ", ""))
    except ValueError:
        return None
    return ScaleFrame(
        weight_kg=weight * unit,
        tare_kg=None,
        net=mode in "Nn",
        motion=motion == "M",
        over_range=status in "OU",
    )


@dataclass
class ToledoParser:
    checksum: bool | None = None  # None: accept frames with or without a checksum byte
    bad_frames: int = 0
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[ScaleFrame]:
        self._buffer.extend(byte & 0x7F for byte in data)
        frames: list[ScaleFrame] = []
        while True:
            start = self._buffer.find(STX)
            if start < 0:
                self._buffer.clear()
                return frames
            del self._buffer[:start]
            if len(self._buffer) < TOLEDO_LENGTH + (self.checksum is not False):
                return frames
            raw = bytes(self._buffer[:TOLEDO_LENGTH])
            decoded = decode_toledo(raw)
            consumed = TOLEDO_LENGTH
            if decoded is not None and self.checksum is not False:
                matches = self._buffer[TOLEDO_LENGTH] == toledo_checksum(raw)
                if matches:
                    consumed += 1
                elif self.checksum or self._buffer[TOLEDO_LENGTH] != STX:
                    decoded = None
            if decoded is None:
                self.bad_frames += 1
                del self._buffer[:1]  # re-synchronise on the next STX
                continue
            del self._buffer[:consumed]
            frames.append(decoded)


@dataclass
class SmaParser:
    bad_frames: int = 0
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[ScaleFrame]:
        self._buffer.extend(byte & 0x7F for byte in data)
        frames: list[ScaleFrame] = []
        while True:
            start = self._buffer.find(LF)
            if start < 0:
                self._buffer.clear()
                return frames
            end = self._buffer.find(CR, start)
            if end < 0:
                del self._buffer[:start]
                if len(self._buffer) > 4 * SMA_LENGTH:
                    self.bad_frames += 1
                    del self._buffer[:1]
                    continue
                return frames
            decoded = decode_sma(bytes(self._buffer[start + 1 : end]))
            del self._buffer[: end + 1]
            if decoded is None:
                self.bad_frames += 1
            else:
                frames.append(decoded)


class StabilityFilter:
    """Turns a stream of frames into readings: emitted on change, stable only when settled."""

    def __init__(self, stable_frames: int, tolerance_kg: float) -> None:
        self.stable_frames = stable_frames
        self.tolerance_kg = tolerance_kg
        self._recent: deque[float] = deque(maxlen=stable_frames)
        self._last: tuple[float, bool] | None = None

    def consider(self, frame: ScaleFrame, at: datetime) -> WeightReading | None:
        gross = frame.gross_kg
        if gross is None or frame.over_range:
            self._recent.clear()
            if self._last is not None and self._last[1]:
                self._last = (self._last[0], False)
                return WeightReading(self._last[0], False, at)
            return None
        if frame.motion:
            self._recent.clear()
        else:
            self._recent.append(gross)
        stable = (
            len(self._recent) == self.stable_frames
            and max(self._recent) - min(self._recent) <= self.tolerance_kg
        )
        if stable:
            gross = sum(self._recent) / len(self._recent)
        if self._last is not None:
            last_gross, last_stable = self._last
            if stable == last_stable and abs(gross - last_gross) <= self.tolerance_kg:
                return None
        self._last = (gross, stable)
        return WeightReading(round(gross, 3), stable, at)


class Scale:
    """Reads the lane scale and reports weights to `on_weight` (stable ones marked stable)."""

    def __init__(
        self,
        lane: str,
        config: ScaleConfig,
        on_weight: Callable[[WeightReading], None],
        on_health: HealthCallback,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.lane = lane
        self.config = config
        self._on_weight = on_weight
        self._clock = clock
        self.parser: ToledoParser | SmaParser = (
            ToledoParser(checksum=config.checksum) if config.protocol == "toledo" else SmaParser()
        )
        self.filter = StabilityFilter(config.stable_frames, config.stable_tolerance_kg)
        self._line = SerialLine(lane, "scale", config, on_health, silence_s=config.silence_s)
        self.frames = 0
        self._over_range_logged = False

    async def run(self) -> None:
        await self._line.run(self.feed)

    def feed(self, data: bytes) -> None:
        at = self._clock()
        for frame in self.parser.feed(data):
            self.frames += 1
            if frame.over_range != self._over_range_logged:
                self._over_range_logged = frame.over_range
                _LOGGER.warning(
                    "lane %s: scale %s range", self.lane, "over" if frame.over_range else "back in"
                )
            reading = self.filter.consider(frame, at)
            if reading is None:
                continue
            _LOGGER.debug(
                "lane %s: scale %.0f kg %s",
                self.lane, reading.gross_kg, "stable" if reading.stable else "moving",
            )
            try:
                self._on_weight(reading)
            except Exception:
                _LOGGER.exception("lane %s: scale: weight handler failed", self.lane)
