"""Helpers for tests that drive an asyncio task and must not hang when it misbehaves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def turns_until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait for a condition, looking at it on every turn of the event loop (bounded)."""
    async with asyncio.timeout(within):
        for _ in range(10_000_000):
            if condition():
                return
            await asyncio.sleep(0)
    raise AssertionError(f"condition not reached within {within} s")


async def end_task(task: asyncio.Task[None]) -> bool:
    """Cancel a driver task and wait (bounded) for it to end; False if it ran on after a
    cancel.

    A driver that drops a cancel is cancelled again until it ends, so that a failing test
    fails instead of hanging in its teardown.
    """
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2.0)
    for _ in range(200):
        if task.done():
            break
        task.cancel()
        await asyncio.sleep(0.01)
    if task.done() and not task.cancelled():
        task.result()  # a driver that failed says why
    return bool(done)
