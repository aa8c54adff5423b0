"""Helpers of the LLRP tests: a simulated reader, a supervisor running as a task, recorders."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from gated.config import LlrpReaderConfig
from gated.domain import DeviceHealth, TagRead


class Runnable(Protocol):
    async def run(self) -> None: ...


EPC_TRUCK = "3005FB63AC1F3841EC880467"
EPC_LONG = "1FB41F712AC9C37AB79D618173188324001A"


def reader_config(port: int, **overrides: object) -> LlrpReaderConfig:
    """Short watchdog and back-off so that fault tests finish in a second or two."""
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "antennas": [1, 2],
        "watchdog_s": 0.8,
        "keepalive_s": 0.1,
        "backoff_cap_s": 0.3,
        "dedupe_window_s": 0.2,
    }
    settings.update(overrides)
    return LlrpReaderConfig.model_validate(settings)


@dataclass(repr=False)
class Recorder:
    reads: list[TagRead] = field(default_factory=list)
    health: list[DeviceHealth] = field(default_factory=list)

    def on_read(self, read: TagRead) -> None:
        self.reads.append(read)

    def on_health(self, health: DeviceHealth) -> None:
        self.health.append(health)

    def __repr__(self) -> str:
        epcs = sorted({r.epc for r in self.reads})
        return f"Recorder({len(self.reads)} reads of {epcs}, health {self.states})"

    @property
    def states(self) -> list[bool]:
        return [h.up for h in self.health]

    async def until(self, predicate: Callable[[], bool], within_s: float = 5.0) -> None:
        deadline = time.monotonic() + within_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met in {within_s} s: {self}")
            await asyncio.sleep(0.01)

    async def reads_after(self, count: int, epc: str | None = None, within_s: float = 5.0) -> None:
        """Wait until `count` more reads (of `epc`, if given) than now have arrived."""
        def matching() -> int:
            return sum(1 for r in self.reads if epc is None or r.epc == epc)

        target = matching() + count
        await self.until(lambda: matching() >= target, within_s)


@contextlib.asynccontextmanager
async def supervised(service: Runnable) -> AsyncIterator[asyncio.Task[None]]:
    """Run a supervisor (or any service with `run()`) as a task; cancel it at the end."""
    task = asyncio.create_task(service.run(), name=f"test-{type(service).__name__}")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
