"""One supervised LLRP reader: connect, watch, reconnect, and hand reads to asyncio.

sllurp runs a thread per connection and never notices a silent reader, so the supervisor does:
a fresh client per connection, its own capped exponential back-off, a watchdog on the time
since the last message (report or keepalive), and a clean stop that leaves no thread behind.
Tag reports cross from sllurp's thread into the event loop through a deque and one scheduled
callback, so sllurp's thread never waits for the loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import socket
import time
from collections.abc import Callable
from typing import Any

from sllurp.llrp import LLRPReaderState

from gated.config import LlrpReaderConfig
from gated.domain import DeviceHealth, TagRead
from rfid.client import SupervisedClient, sllurp_config
from rfid.reads import ReadStats, TagReportNormaliser

_LOGGER = logging.getLogger(__name__)

FIRST_RETRY_S = 0.25
CONNECT_TIMEOUT_S = 5.0
MAX_INBOX = 50_000  # report messages waiting for the loop; beyond this the oldest are dropped
DRAIN_BATCH = 2_000


class ReaderSupervisor:
    """Keeps one LLRP reader connected and inventorying; reads and health go to callbacks.

    `on_read` and `on_health` are called in the event loop's thread. Health is reported on
    change only: down once when a reader is lost (or cannot be reached at start), up once when
    it inventories again.
    """

    def __init__(
        self,
        name: str,
        config: LlrpReaderConfig,
        on_read: Callable[[TagRead], None],
        on_health: Callable[[DeviceHealth], None],
        lane: str | None = None,
        *,
        report_every_n_tags: int = 1,
        report_timeout_ms: int = 100,
        max_clock_skew_s: float = 300.0,
        first_retry_s: float = FIRST_RETRY_S,
    ) -> None:
        self.name = name
        self.config = config
        self.lane = lane
        self.on_read = on_read
        self.on_health = on_health
        self.report_every_n_tags = report_every_n_tags
        self.report_timeout_ms = report_timeout_ms
        self.first_retry_s = min(first_retry_s, 1.0)
        where = f"lane {lane}" if lane is not None else "yard"
        self.label = f"{where}: LLRP reader {name} ({config.host}:{config.port})"
        self.normaliser = TagReportNormaliser(
            reader=name,
            dedupe_window_s=config.dedupe_window_s,
            default_antenna=config.antennas[0] if len(config.antennas) == 1 else 0,
            max_clock_skew_s=max_clock_skew_s,
            label=self.label,
        )
        self.up: bool | None = None
        self.connections = 0
        self.outages = 0
        self._unknown_before = 0
        self._client: SupervisedClient | None = None
        self._inbox: collections.deque[tuple[float, float, list[dict[str, Any]]]] = (
            collections.deque()
        )
        self._drain_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._random = random.Random()

    @property
    def stats(self) -> ReadStats:
        return self.normaliser.stats

    @property
    def unknown_messages(self) -> int:
        """Messages of unknown type skipped, over all connections."""
        current = self._client.unknown_messages if self._client is not None else 0
        return self._unknown_before + current

    # --- the supervision loop -----------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; cancelling stops the reader's inventory and sllurp's thread."""
        self._loop = asyncio.get_running_loop()
        failures = 0
        while True:
            reached_inventory, reason = await self._one_connection()
            if reached_inventory:
                failures = 0
            self._set_health(False, reason)
            # the exponent is capped: a reader down for days must not overflow the float
            delay = min(self.config.backoff_cap_s, self.first_retry_s * 2 ** min(failures, 32))
            delay *= self._random.uniform(0.8, 1.0)  # readers lost together do not retry together
            failures += 1
            _LOGGER.debug("%s: %s; next attempt in %.2f s", self.label, reason, delay)
            await asyncio.sleep(delay)

    async def _one_connection(self) -> tuple[bool, str]:
        """Connect, inventory until something goes wrong; returns (inventoried, reason)."""
        loop = asyncio.get_running_loop()
        ended = asyncio.Event()
        inventorying = asyncio.Event()
        changed = asyncio.Event()  # wakes the watch loop on either of the two

        def mark(event: asyncio.Event) -> None:
            event.set()
            changed.set()

        client = SupervisedClient(
            self.config.host,
            self.config.port,
            sllurp_config(
                self.config.antennas,
                self.config.tx_power_dbm,
                self.config.keepalive_s,
                self.report_every_n_tags,
                self.report_timeout_ms,
            ),
            label=self.label,
            on_ended=lambda: loop.call_soon_threadsafe(mark, ended),
        )
        self._client = client
        client.add_tag_report_callback(self._on_tag_report)
        client.add_state_callback(
            LLRPReaderState.STATE_INVENTORYING,
            lambda _client, _state: loop.call_soon_threadsafe(mark, inventorying),
        )
        polite = False
        try:
            try:
                sock = await self._open_socket()
            except OSError as exc:
                return False, f"cannot connect: {exc.strerror or exc}"
            client.attach(sock)
            client.connect()
            self.connections += 1
            reason = await self._watch(client, ended, inventorying, changed)
            return inventorying.is_set(), reason
        except asyncio.CancelledError:
            polite = inventorying.is_set()  # a clean shutdown stops the reader's inventory
            raise
        finally:
            await self._stop_client(client, ended, polite)
            self._unknown_before += client.unknown_messages
            self._client = None

    async def _watch(
        self,
        client: SupervisedClient,
        ended: asyncio.Event,
        inventorying: asyncio.Event,
        changed: asyncio.Event,
    ) -> str:
        """Wait until the connection fails; returns why."""
        watchdog = self.config.watchdog_s
        started = time.monotonic()
        tick = min(0.25, watchdog / 5)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(tick):
                    await changed.wait()
            changed.clear()
            if ended.is_set():
                return client.failure or "connection closed by the reader"
            now = time.monotonic()
            if inventorying.is_set():
                self._set_health(True, "inventorying")
            elif now - started > watchdog:
                return f"handshake not finished after {watchdog:g} s"
            silence = now - client.last_message_at
            if silence > watchdog:
                return f"no message for {silence:.1f} s (watchdog {watchdog:g} s)"

    async def _open_socket(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancel that arrives
            # as the connect fails, and the supervisor would then never stop
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await loop.sock_connect(sock, (self.config.host, self.config.port))
            sock.setblocking(True)
            sock.settimeout(CONNECT_TIMEOUT_S)  # bounds sllurp's blocking sends
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            sock.close()
            raise
        return sock

    async def _stop_client(
        self, client: SupervisedClient, ended: asyncio.Event, polite: bool
    ) -> None:
        """Stop inventory politely on a clean shutdown, then end sllurp's thread.

        The blocking parts (sllurp's sends, joining its thread) run in worker threads so that
        a reader that stopped reading cannot hold up the event loop and the daemon's stop.
        """
        try:
            if polite and not ended.is_set() and client.failure is None:
                try:
                    # DELETE_ACCESSSPEC + DELETE_ROSPEC, then closes
                    async with asyncio.timeout(1.0):
                        await asyncio.to_thread(client.disconnect)
                    async with asyncio.timeout(1.0):
                        await ended.wait()
                except Exception as exc:  # sllurp raises several kinds on a half-dead socket
                    _LOGGER.debug("%s: polite stop failed: %s", self.label, exc)
        finally:
            # even when cancelled again meanwhile, the close runs to its end: no thread is left
            closing = asyncio.ensure_future(asyncio.to_thread(client.close, 1.0))
            try:
                await asyncio.shield(closing)
            except asyncio.CancelledError:
                await closing
                raise
        thread = client.thread
        if thread is not None and thread.is_alive():
            _LOGGER.error("%s: sllurp's thread did not stop", self.label)

    def _set_health(self, up: bool, detail: str) -> None:
        if self.up is up:
            return
        self.up = up
        if up:
            _LOGGER.info("%s: connected and inventorying", self.label)
        else:
            self.outages += 1
            _LOGGER.warning("%s: lost: %s; retrying with back-off", self.label, detail)
        try:
            self.on_health(DeviceHealth(lane=self.lane, device=self.name, up=up, detail=detail))
        except Exception:
            _LOGGER.exception("%s: health handler failed", self.label)

    # --- reads: sllurp's thread -> event loop -----------------------------------------------

    def _on_tag_report(self, _client: Any, tags: list[dict[str, Any]]) -> None:
        """Called in sllurp's thread: queue and wake the loop once, never wait."""
        self._inbox.append((time.time(), time.monotonic(), tags))
        if len(self._inbox) > MAX_INBOX:
            self._inbox.popleft()
            self.normaliser.stats.overload_dropped += 1
        if not self._drain_scheduled and self._loop is not None:
            self._drain_scheduled = True
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False  # before draining, so nothing queued meanwhile is missed
        normalise = self.normaliser.normalise
        for _ in range(DRAIN_BATCH):
            if not self._inbox:
                return
            host_time, monotonic, tags = self._inbox.popleft()
            for tag in tags:
                read = normalise(tag, host_time, monotonic)
                if read is not None:
                    self._deliver(read)
        if self._inbox and not self._drain_scheduled and self._loop is not None:
            self._drain_scheduled = True
            self._loop.call_soon(self._drain)

    def _deliver(self, read: TagRead) -> None:
        try:
            self.on_read(read)
        except Exception:
            _LOGGER.exception("%s: read handler failed for EPC %s", self.label, read.epc)
