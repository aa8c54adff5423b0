"""The OCR worker pool outlives a worker that dies: the reads caught in it are tried again on
fresh workers, a picture that kills its worker twice gets an error, and the pool goes on."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from gated.ocr_pool import QUICK_RENEWALS, RenewingProcessPool


def echo(value: str) -> str:
    return value


def slow_echo(value: str) -> str:
    time.sleep(0.3)
    return value


def poison(_value: str) -> str:
    os._exit(3)  # as a worker killed by a crash in Tesseract or by the OOM killer


def cannot_start() -> None:
    os._exit(4)  # a broken install: every worker dies as it starts


def dies_once(marker: str, after_s: float = 0.0) -> str:
    """Kills its worker the first time (a transient crash, the OOM killer), then works."""
    flag = Path(marker)
    if not flag.exists():
        flag.write_text("died")
        time.sleep(after_s)
        os._exit(3)
    return "read"


@pytest.fixture
def pool() -> Iterator[RenewingProcessPool]:
    pool = RenewingProcessPool(2)
    yield pool
    pool.stop(deadline_s=2.0)


async def test_reads_caught_in_a_worker_death_are_read_again(
    pool: RenewingProcessPool, tmp_path: Path
) -> None:
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(pool, echo, "warm") == "warm"
    others = [loop.run_in_executor(pool, slow_echo, f"truck-{i}") for i in range(3)]
    crash = loop.run_in_executor(pool, dies_once, str(tmp_path / "died"))
    assert await crash == "read"
    assert await asyncio.gather(*others) == ["truck-0", "truck-1", "truck-2"]
    assert pool.renewals == 1


async def test_a_picture_that_kills_its_worker_twice_fails_and_the_pool_goes_on(
    pool: RenewingProcessPool,
) -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(BrokenProcessPool):
        await loop.run_in_executor(pool, poison, "bad picture")
    assert pool.renewals == 2
    later = await asyncio.gather(*(loop.run_in_executor(pool, echo, str(i)) for i in range(4)))
    assert later == ["0", "1", "2", "3"]


def test_a_read_given_up_before_a_worker_dies_does_not_stall_the_others(
    pool: RenewingProcessPool, tmp_path: Path
) -> None:
    """Python 3.11's pool, breaking, fails every pending future; one cancelled under it used to
    kill its management thread and leave the other reads unanswered for ever."""
    assert pool.submit(echo, "warm").result(timeout=60) == "warm"
    crash = pool.submit(dies_once, str(tmp_path / "died"), 0.3)
    busy = pool.submit(slow_echo, "busy")
    queued = [pool.submit(slow_echo, f"truck-{i}") for i in range(8)]
    queued[-1].cancel()  # the lane stopped waiting for this one
    others = [busy, *queued[:-1]]
    done, pending = wait(others, timeout=60)
    assert not pending, f"{len(pending)} reads never answered"
    assert [f.result() for f in others] == ["busy", *(f"truck-{i}" for i in range(7))]
    assert crash.result(timeout=60) == "read"


def test_workers_that_keep_dying_are_not_restarted_in_a_loop() -> None:
    pool = RenewingProcessPool(2, initializer=cannot_start)
    try:
        errors = []
        for i in range(8):
            try:
                pool.submit(echo, str(i)).result(timeout=60)
            except (BrokenProcessPool, RuntimeError) as exc:
                errors.append(exc)
        assert len(errors) == 8
        # QUICK_RENEWALS renewals, a fourth that starts the rest, then nothing for a while
        assert pool.renewals == QUICK_RENEWALS + 1
        assert "keep dying" in str(errors[-1])
    finally:
        pool.stop(deadline_s=2.0)


async def test_a_stopped_pool_refuses_work(pool: RenewingProcessPool) -> None:
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(pool, echo, "x") == "x"
    pool.stop(deadline_s=2.0)
    with pytest.raises(RuntimeError, match="stopped"):
        pool.submit(echo, "y")
