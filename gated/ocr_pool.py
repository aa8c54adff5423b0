"""The OCR worker processes, replaced when one of them dies.

A `ProcessPoolExecutor` whose worker dies (Tesseract crashing on a picture, the kernel's OOM
killer) is broken for good: every later read would fail and every truck would go to a clerk.
This executor starts a fresh pool instead, and gives each read caught in the failure one more
try on it. A picture that kills its worker twice gets an error of its own; the reads of the
other trucks go on.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPTS = 2  # a read caught in a worker's death is tried once more on the new pool
# Workers that keep dying (a broken install, memory exhausted) are not restarted in a tight
# loop: after QUICK_RENEWALS renewals within QUICK_WINDOW_S, reads fail at once for a rest
# that doubles each time, from REST_FIRST_S up to REST_CAP_S.
QUICK_RENEWALS = 3
QUICK_WINDOW_S = 60.0
REST_FIRST_S = 5.0
REST_CAP_S = 300.0


class RenewingProcessPool(Executor):
    """A spawn-context process pool that replaces itself when broken."""

    def __init__(self, workers: int, initializer: Callable[[], object] | None = None) -> None:
        self._workers = workers
        self._initializer = initializer
        self._lock = threading.Lock()
        self._shut = False
        self.renewals = 0
        self._renewed_at: collections.deque[float] = collections.deque(maxlen=QUICK_RENEWALS)
        self._rests = 0
        self._resting_until = 0.0
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawned, not forked: the daemon has threads (sllurp, paho) a fork would copy badly
        pool = ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=self._initializer,
        )
        for _ in range(self._workers):
            pool.submit(int)  # start the workers now, not on the first truck
        return pool

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        outer: Future[T] = Future()
        self._attempt(outer, fn, args, kwargs, ATTEMPTS)
        return outer

    def _attempt(
        self,
        outer: Future[T],
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        attempts: int,
    ) -> None:
        with self._lock:
            if self._shut:
                raise RuntimeError("the OCR workers are stopped")
            resting = self._resting_until - time.monotonic()
            if resting > 0:
                raise RuntimeError(
                    f"the OCR workers keep dying; next start in {resting:.0f} s"
                )
            pool = self._pool
        try:
            inner = pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool as exc:
            self._retry_or_fail(outer, pool, exc, fn, args, kwargs, attempts)
            return

        def finished(done: Future[T]) -> None:
            if done.cancelled():
                outer.cancel()
                return
            error = done.exception()
            if isinstance(error, BrokenProcessPool):
                self._retry_or_fail(outer, pool, error, fn, args, kwargs, attempts)
            elif outer.set_running_or_notify_cancel():
                if error is not None:
                    outer.set_exception(error)
                else:
                    outer.set_result(done.result())

        # A cancel of `outer` is not passed on: Python 3.11's pool, when it breaks, sets an
        # exception on every pending future, and one that was cancelled meanwhile makes its
        # management thread die with InvalidStateError, leaving the others unanswered. A read
        # nobody waits for any more is read all the same and its answer dropped.
        inner.add_done_callback(finished)

    def _retry_or_fail(
        self,
        outer: Future[T],
        pool: ProcessPoolExecutor,
        error: BaseException,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        attempts: int,
    ) -> None:
        if outer.done():
            return
        renewed = self._renew(pool)
        if attempts > 1 and renewed:
            try:
                self._attempt(outer, fn, args, kwargs, attempts - 1)
                return
            except RuntimeError as exc:  # stopped meanwhile, or resting after repeated deaths
                error = exc
        if outer.set_running_or_notify_cancel():
            outer.set_exception(error)

    def _renew(self, broken: ProcessPoolExecutor) -> bool:
        """Replace `broken` unless that was done already; False once stopped."""
        with self._lock:
            if self._shut:
                return False
            if self._pool is not broken:
                return True
            self.renewals += 1
            now = time.monotonic()
            recent = self._renewed_at
            if recent and now - recent[-1] > QUICK_WINDOW_S:
                self._rests = 0  # a calm spell: the next rest is the first again
            if len(recent) == QUICK_RENEWALS and now - recent[0] < QUICK_WINDOW_S:
                rest = min(REST_CAP_S, REST_FIRST_S * 2 ** min(self._rests, 16))
                self._rests += 1
                self._resting_until = now + rest
                recent.clear()
                _LOGGER.error(
                    "OCR: worker processes died %d times within %.0f s; reads fail for "
                    "%.0f s, then new workers start", QUICK_RENEWALS + 1, QUICK_WINDOW_S, rest,
                )
            else:
                _LOGGER.error(
                    "OCR: a worker process died; starting %d new workers (renewal %d)",
                    self._workers, self.renewals,
                )
            self._renewed_at.append(now)
            self._pool = self._new_pool()
        # not cancel_futures: the broken pool fails its pending futures itself, and a future
        # cancelled under it would stop it doing so (see `_attempt`)
        broken.shutdown(wait=False)
        return True

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shut = True
            pool = self._pool
        pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def stop(self, deadline_s: float = 1.0) -> None:
        """Stop within `deadline_s`: a read in progress is abandoned (its transaction is
        recovered as interrupted at the next start), a worker still busy is terminated."""
        with self._lock:
            self._shut = True
            pool = self._pool
        # the executor's process table is private, but waiting for a running read (or a
        # warm-up still importing OpenCV) could take longer than the daemon may take to stop
        processes = list((getattr(pool, "_processes", None) or {}).values())  # None once shut
        pool.shutdown(wait=False, cancel_futures=True)
        ends = time.monotonic() + deadline_s
        for process in processes:
            process.join(max(0.0, ends - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(1.0)
