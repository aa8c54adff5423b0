"""The daemon's own radiation alarm rule: foreground against BG + n * sqrt(BG), per channel.

The monitor has its own alarm; the daemon evaluates every occupancy too, so a monitor with a
wrong threshold or a stuck alarm output does not decide alone. Everything here is pure: the
same functions work on floats and on numpy arrays (the property test feeds them arrays).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

# A background below this is treated as this many counts per second: a channel whose
# background is 0 (a neutron tube that is not fitted, or an empty window) would otherwise alarm
# on its first count, and sqrt(BG) is meaningless there.
BACKGROUND_FLOOR = 1.0

# A gamma channel that counted under this fraction of its background over an occupancy is dead
# (vehicle shadowing takes at most ~40 %); judged only when at least DEAD_MIN_EXPECTED counts
# were expected, so that chance alone cannot make a working channel look dead.
DEAD_FRACTION = 0.2
DEAD_MIN_EXPECTED = 50.0

# Gamma panels are sampled every 200 ms; the foreground is the sum over 1 s of samples.
GAMMA_SAMPLES_PER_WINDOW = 5
# Neutron tubes report one sample per second, which is already a 1 s window.
NEUTRON_SAMPLES_PER_WINDOW = 1

Number = TypeVar("Number", float, Any)


def effective_background(background: Number) -> Number:
    """The background used in the rule: the measured one, but never below BACKGROUND_FLOOR."""
    if isinstance(background, (int, float)):
        return max(float(background), BACKGROUND_FLOOR)  # type: ignore[return-value]
    import numpy as np

    return np.maximum(background, BACKGROUND_FLOOR)  # type: ignore[no-any-return]


def alarm_threshold(background: Number, n_sigma: float) -> Number:
    """Counts in one 1 s window above which a channel alarms: BG + n * sqrt(BG)."""
    bg = effective_background(background)
    return bg + n_sigma * bg**0.5  # type: ignore[no-any-return]


def exceeds(foreground: Number, background: Number, n_sigma: float) -> Any:
    """True where the foreground of a 1 s window is above BG + n * sqrt(BG)."""
    return foreground > alarm_threshold(background, n_sigma)


def sigma(foreground: float, background: float) -> float:
    """How many standard deviations of the background the foreground stands above it."""
    bg = effective_background(background)
    return (foreground - bg) / math.sqrt(bg)


@dataclass
class ChannelGroupEvaluator:
    """Running evaluation of one kind of detector (gamma or neutron) over one occupancy.

    Samples arrive one at a time; each new sample closes a sliding 1 s window (the sum of the
    last `window` samples) that is compared with the background taken at occupancy start.
    """

    background: tuple[float, ...]
    n_sigma: float
    window: int
    peak_sigma: list[float] = field(default_factory=list)
    alarm: bool = False
    windows: int = 0
    samples: int = 0
    totals: list[float] = field(default_factory=list)  # counts per channel, whole occupancy
    _recent: deque[tuple[float, ...]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.peak_sigma = [-math.inf] * len(self.background)
        self.totals = [0.0] * len(self.background)

    def add(self, counts: Sequence[float]) -> None:
        """Take one sample (counts per channel); channels beyond the background are ignored."""
        sample = tuple(float(c) for c in counts[: len(self.background)])
        self.samples += 1
        for channel, value in enumerate(sample):
            self.totals[channel] += value
        self._recent.append(sample)
        if len(self._recent) > self.window:
            self._recent.popleft()
        if len(self._recent) < self.window:
            return
        self.windows += 1
        for channel, bg in enumerate(self.background):
            foreground = sum(sample[channel] for sample in self._recent if channel < len(sample))
            self.peak_sigma[channel] = max(self.peak_sigma[channel], sigma(foreground, bg))
            if exceeds(foreground, bg, self.n_sigma):
                self.alarm = True

    def finish(self) -> None:
        """Close an occupancy shorter than one window: compare what there is with the
        background expected over that shorter time."""
        if self.windows or not self._recent:
            return
        fraction = len(self._recent) / self.window
        self.windows += 1
        for channel, bg in enumerate(self.background):
            foreground = sum(s[channel] for s in self._recent if channel < len(s))
            expected = bg * fraction
            self.peak_sigma[channel] = max(self.peak_sigma[channel], sigma(foreground, expected))
            if exceeds(foreground, expected, self.n_sigma):
                self.alarm = True

    def dead_channels(self) -> list[int]:
        """Channels that counted far less than their background allows: a vehicle shadows at
        most ~40 %, so under DEAD_FRACTION of the expected counts the detector is not working
        (unplugged, dead, stuck at zero), and its silence must not pass for a clean scan."""
        dead = []
        for channel, bg in enumerate(self.background):
            expected = bg * self.samples / self.window
            if bg <= 0 or (
                expected >= DEAD_MIN_EXPECTED and self.totals[channel] < DEAD_FRACTION * expected
            ):
                dead.append(channel)
        return dead

    def peaks(self) -> tuple[float, ...]:
        """Peak sigma per channel, rounded for people; channels never evaluated are absent."""
        if not self.windows:
            return ()
        return tuple(round(p, 2) + 0.0 for p in self.peak_sigma)
