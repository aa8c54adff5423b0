"""Counters and timing summaries, rendered in the Prometheus text format for /metrics."""

from __future__ import annotations

import bisect
import math
from collections import defaultdict

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{str(v).replace(chr(34), "")}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


class Metrics:
    """Process-wide counters, gauges and histograms; cheap enough to call per event."""

    def __init__(self) -> None:
        self._counters: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._gauges: dict[str, dict[str, float]] = defaultdict(dict)
        self._histograms: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(BUCKETS))
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self._counters[name][_labels(labels)] += amount

    def set(self, name: str, value: float, **labels: str) -> None:
        self._gauges[name][_labels(labels)] = value

    def observe(self, name: str, seconds: float) -> None:
        if math.isnan(seconds):
            return
        index = bisect.bisect_left(BUCKETS, seconds)
        buckets = self._histograms[name]
        for i in range(index, len(BUCKETS)):
            buckets[i] += 1
        self._sums[name] += seconds
        self._counts[name] += 1

    def counter(self, name: str, **labels: str) -> float:
        return self._counters.get(name, {}).get(_labels(labels), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        for name, series in sorted(self._counters.items()):
            lines.append(f"# TYPE {name} counter")
            lines.extend(f"{name}{key} {value:g}" for key, value in sorted(series.items()))
        for name, series in sorted(self._gauges.items()):
            lines.append(f"# TYPE {name} gauge")
            lines.extend(f"{name}{key} {value:g}" for key, value in sorted(series.items()))
        for name, buckets in sorted(self._histograms.items()):
            lines.append(f"# TYPE {name} histogram")
            for bound, count in zip(BUCKETS, buckets, strict=True):
                lines.append(f'{name}_bucket{{le="{bound:g}"}} {count:g}')
            lines.append(f'{name}_bucket{{le="+Inf"}} {self._counts[name]}')
            lines.append(f"{name}_sum {self._sums[name]:g}")
            lines.append(f"{name}_count {self._counts[name]}")
        return "\n".join(lines) + "\n"
