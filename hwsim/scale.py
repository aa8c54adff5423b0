"""A simulated weighbridge indicator on a pty: Toledo continuous or SMA output, several times a
second, like the real thing. `drive_on` rolls a truck on axle group by axle group and lets it
settle; `drive_off` rolls it off; `replay` plays recorded readings (e.g. the field recording in
../shared/data/field/scale/example).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from drivers.scale import toledo_checksum
from hwsim.pty_device import PtyDevice

_LOGGER = logging.getLogger(__name__)


def _with_even_parity(data: bytes) -> bytes:
    """7E1 seen through an 8N1 port: the top bit makes the count of ones even."""
    return bytes(byte | (0x80 if bin(byte).count("1") % 2 else 0) for byte in data)


def toledo_frame(
    gross_kg: float, *, motion: bool, over_range: bool = False, checksum: bool = True
) -> bytes:
    """A gross weight in kg, integer kilograms (SWA: decimal code 2, increment x1)."""
    weight = round(abs(gross_kg))
    swb = 0x20 | 0x10  # always-one bit, kg
    if gross_kg < 0:
        swb |= 0x02
    if over_range or weight > 999_999:
        swb |= 0x04
        weight = min(weight, 999_999)
    if motion:
        swb |= 0x08
    frame = bytes([0x02, 0x2A, swb, 0x20]) + f"{weight:06d}000000".encode("ascii") + b"\r"
    return frame + bytes([toledo_checksum(frame)]) if checksum else frame


def sma_frame(gross_kg: float, *, motion: bool, over_range: bool = False) -> bytes:
    status = "O" if over_range else ("Z" if abs(gross_kg) < 1 else " ")
    text = f"{status}1G{'M' if motion else ' '} {gross_kg:10.0f}kg "
    return b"\n" + text.encode("ascii") + b"\r"


class SimulatedScale:
    """A weighbridge indicator reachable at `link_path`. Use `async with` or start/close."""

    def __init__(
        self,
        link_path: str | Path,
        *,
        protocol: Literal["toledo", "sma"] = "toledo",
        interval_s: float = 0.1,
        parity_bit: bool = False,
        checksum: bool = True,
        noise_kg: float = 0.0,
    ) -> None:
        self.device = PtyDevice(link_path, "simulated scale")
        self.protocol = protocol
        self.interval_s = interval_s
        self.parity_bit = parity_bit
        self.checksum = checksum
        self.noise_kg = noise_kg
        self.sending = True  # False: the indicator's output stops (cable cut, indicator off)
        self.gross_kg = 0.0
        self._profile: deque[tuple[float, bool]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._tick = 0

    @property
    def link_path(self) -> Path:
        return self.device.link_path

    @property
    def settled(self) -> bool:
        """True once every queued movement has been sent."""
        return not self._profile

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._stream(), name="hwsim scale output")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.device.close()

    async def __aenter__(self) -> SimulatedScale:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def drive_on(self, gross_kg: float, *, axle_groups: int = 3, frames_per_step: int = 4) -> None:
        """Roll a truck of `gross_kg` onto the bridge, one axle group at a time, then settle."""
        start = self.gross_kg
        for group in range(1, axle_groups + 1):
            target = start + (gross_kg - start) * group / axle_groups
            self._ramp(target, frames_per_step)

    def drive_off(self, *, frames: int = 8) -> None:
        self._ramp(0.0, frames)

    def replay(self, readings_kg: Iterable[float], *, motion_kg: float = 20.0) -> None:
        """Queue recorded readings; motion is flagged the way an indicator does it, when the
        weight moved more than `motion_kg` within the last three readings."""
        recent: deque[float] = deque(maxlen=3)
        last = self._profile[-1][0] if self._profile else self.gross_kg
        recent.append(last)
        for value in readings_kg:
            recent.append(value)
            self._profile.append((value, max(recent) - min(recent) > motion_kg))

    def _ramp(self, target: float, frames: int) -> None:
        start = self._profile[-1][0] if self._profile else self.gross_kg
        for step in range(1, frames + 1):
            self._profile.append((start + (target - start) * step / frames, True))

    def frame(self, gross_kg: float, motion: bool) -> bytes:
        if self.protocol == "sma":
            raw = sma_frame(gross_kg, motion=motion)
        else:
            raw = toledo_frame(gross_kg, motion=motion, checksum=self.checksum)
        return _with_even_parity(raw) if self.parity_bit else raw

    def send_raw(self, data: bytes) -> None:
        self.device.write(data)

    async def _stream(self) -> None:
        while True:
            if self._profile:
                self.gross_kg, motion = self._profile.popleft()
            else:
                motion = False
            self._tick += 1
            jitter = self.noise_kg if self._tick % 2 else 0.0
            if self.sending:
                self.device.write(self.frame(self.gross_kg + jitter, motion))
            await asyncio.sleep(self.interval_s)
