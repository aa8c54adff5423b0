"""A simulated LLRP reader: an asyncio TCP server that answers an LLRP client like a fixed reader.

One client at a time (a second one is refused the LLRP way), the capability / configuration /
ROSpec handshake, keepalives, and RO_ACCESS_REPORTs of the tags in its `TagField`. Faults are
switched through `reader.faults` and the one-shot methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import BinaryIO

from hwsim.llrp import protocol as llrp
from hwsim.llrp.faults import Faults
from hwsim.llrp.protocol import MessageType, ROSpecSummary, TagObservation
from hwsim.llrp.tagfield import TagField

_LOGGER = logging.getLogger(__name__)
Y2000_US = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
MAX_BUFFERED_TAGS = 100_000  # a real reader's report buffer is finite too
FAKE_EPC = bytes.fromhex("E2801160600002054E5D1A2B")


class SimulatedReader:
    """An LLRP reader on loopback. `await start()`, script `field`, switch `faults`, `stop()`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        field: TagField | None = None,
        model: llrp.ReaderModel | None = None,
        name: str = "hwsim-llrp",
        tick_s: float = 0.01,
        capture: BinaryIO | None = None,
        seed: int | None = None,
        burst: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.field = field if field is not None else TagField()
        self.model = model or llrp.ReaderModel()
        self.name = name
        self.tick_s = tick_s
        self.capture = capture
        self.burst = burst  # benchmarks: report every tag in the field as fast as TCP drains
        self.faults = Faults()
        self.boot_wall = time.time()
        self.boot_monotonic = time.monotonic()
        self.sessions_accepted = 0
        self.sessions_refused = 0
        self.reports_sent = 0
        self.tags_reported = 0
        self.requests: Counter[str] = Counter()  # client messages received, by type name
        self._random = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._session: _Session | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        _LOGGER.info("%s: simulated LLRP reader on %s:%d", self.name, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._session is not None:
            self._session.abort()
        # the handlers end by themselves once their connection is gone
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SimulatedReader:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def connected(self) -> bool:
        return self._session is not None and not self._session.closed

    @property
    def inventorying(self) -> bool:
        return self._session is not None and self._session.inventorying

    # --- one-shot faults ----------------------------------------------------------------------

    def drop_connection(self) -> None:
        """Close the client's TCP connection abruptly (reader reboot, cable pulled)."""
        if self._session is not None:
            self._session.abort()

    def inject_truncated_parameter(self) -> None:
        """Send one RO_ACCESS_REPORT whose TagReportData claims more bytes than it has."""
        if self._session is not None:
            self._session.send_truncated_report()

    def inject_unknown_message(self, msg_type: int = 999, body: bytes = b"\x00" * 12) -> None:
        """Send one message of a type LLRP does not define."""
        if self._session is not None:
            self._session.send(llrp.raw_message(msg_type, body, self._session.next_id()))

    def replay(self, data: bytes) -> None:
        """Send raw bytes (e.g. a capture of real reader reports) to the current client."""
        if self._session is not None:
            self._session.send(data)

    # --- clock --------------------------------------------------------------------------------

    def reader_time_us(self) -> int:
        """The reader's clock in microseconds, as its faults make it."""
        if self.faults.uptime_timestamps:
            return int((time.monotonic() - self.boot_monotonic) * 1_000_000)
        if self.faults.unset_clock:
            return Y2000_US + int((time.monotonic() - self.boot_monotonic) * 1_000_000)
        return int(time.time() * 1_000_000)

    # --- connections --------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if self.faults.refuse or self.connected:
                await self._refuse(writer)
                return
            session = _Session(self, reader, writer)
            self._session = session
            self.sessions_accepted += 1
            try:
                await session.run()
            finally:
                if self._session is session:
                    self._session = None
        finally:
            self._handlers.discard(task)

    async def _refuse(self, writer: asyncio.StreamWriter) -> None:
        self.sessions_refused += 1
        status = llrp.ConnectionStatus.CLIENT_CONNECTION_EXISTS
        _LOGGER.info("%s: refusing a client (%s)", self.name, status.name)
        writer.write(llrp.reader_event_notification(self.reader_time_us(), status))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


class _Session:
    """One client connection: request handling, keepalives, inventory, faulty writing."""

    def __init__(
        self, owner: SimulatedReader, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.owner = owner
        self.reader = reader
        self.writer = writer
        self.closed = False
        self.rospec: ROSpecSummary | None = None
        self.inventorying = False
        self.keepalive_ms = 0
        self._message_id = 1000
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._pending: list[TagObservation] = []
        self._pending_since: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._burst_block: bytes | None = None
        self._burst_encoded_at = 0.0
        self._burst_tags = 0
        self._burst_messages = 0
        self.peer = writer.get_extra_info("peername")

    def next_id(self) -> int:
        self._message_id += 1
        return self._message_id

    def send(self, data: bytes) -> None:
        if not self.closed:
            self._outbox.put_nowait(data)

    def abort(self) -> None:
        _LOGGER.info("%s: dropping the connection of %s", self.owner.name, self.peer)
        self.closed = True
        self.writer.transport.abort()
        self.reader.feed_eof()

    async def run(self) -> None:
        name = self.owner.name
        _LOGGER.info("%s: client %s connected", name, self.peer)
        self.send(llrp.reader_event_notification(
            self.owner.reader_time_us(), uptime=self.owner.faults.uptime_timestamps
        ))
        self._tasks = [
            asyncio.create_task(self._write_loop(), name=f"{name}-writer"),
            asyncio.create_task(self._keepalive_loop(), name=f"{name}-keepalive"),
            asyncio.create_task(self._inventory_loop(), name=f"{name}-inventory"),
        ]
        try:
            await self._request_loop()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            _LOGGER.info("%s: client %s gone (%s)", name, self.peer, exc or type(exc).__name__)
        finally:
            self.closed = True
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task
            self.writer.transport.abort()

    # --- requests -----------------------------------------------------------------------------

    async def _request_loop(self) -> None:
        while not self.closed:
            head = await self.reader.readexactly(llrp.HEADER.size)
            header = llrp.parse_header(head)
            if header.length < llrp.HEADER.size or header.length > 1 << 20:
                raise ValueError(f"bad message length {header.length}")
            body = await self.reader.readexactly(header.length - llrp.HEADER.size)
            if self.closed:
                return
            self._handle(header, body)

    def _handle(self, header: llrp.Header, body: bytes) -> None:
        kind = header.msg_type
        try:
            self.owner.requests[MessageType(kind).name] += 1
        except ValueError:
            self.owner.requests[f"type {kind}"] += 1
        if kind in (MessageType.KEEPALIVE_ACK, MessageType.ENABLE_EVENTS_AND_REPORTS):
            return
        reply_type = llrp.RESPONSE_TO.get(kind)
        if reply_type is None:
            self.send(llrp.error_message(
                header.message_id, llrp.Status.UNSUPPORTED_MESSAGE, f"message type {kind}"
            ))
            return
        if kind == MessageType.GET_READER_CAPABILITIES:
            self.send(llrp.capabilities_response(
                self.owner.model, header.message_id,
                regulatory_part=not self.owner.faults.incomplete_capabilities,
            ))
            return
        if kind == MessageType.GET_READER_CONFIG:
            reader_id = struct.pack("!Q", self.owner.port)
            self.send(llrp.reader_config_response(
                self.owner.model, header.message_id, self.keepalive_ms, reader_id
            ))
            return
        status = self._apply(kind, body)
        self.send(llrp.response(reply_type, header.message_id, status))
        if kind == MessageType.CLOSE_CONNECTION:
            self.closed = True

    def _apply(self, kind: int, body: bytes) -> bytes:
        """Carry out a request; returns the LLRPStatus parameter of the response."""
        try:
            if kind == MessageType.SET_READER_CONFIG:
                keepalive = llrp.parse_keepalive_ms(body)
                if keepalive is not None:
                    self.keepalive_ms = keepalive
            elif kind == MessageType.ADD_ROSPEC:
                self.rospec = llrp.parse_add_rospec(body)
                self.inventorying = False
            elif kind in (MessageType.ENABLE_ROSPEC, MessageType.START_ROSPEC):
                if self.rospec is None:
                    return llrp.llrp_status(llrp.Status.PARAMETER_ERROR, "no such ROSpec")
                self.inventorying = True  # the start trigger is immediate
            elif kind in (MessageType.DISABLE_ROSPEC, MessageType.STOP_ROSPEC):
                self.inventorying = False
            elif kind == MessageType.DELETE_ROSPEC:
                self.inventorying = False
                self.rospec = None
        except (ValueError, struct.error) as exc:
            return llrp.llrp_status(llrp.Status.PARAMETER_ERROR, str(exc))
        return llrp.llrp_status()

    # --- outgoing -----------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        faults = self.owner.faults
        while True:
            data = await self._outbox.get()
            if faults.coalesce:
                await asyncio.sleep(0.005)
                while not self._outbox.empty():
                    data += self._outbox.get_nowait()
            if faults.silent:
                continue
            if self.owner.capture is not None:
                self.owner.capture.write(data)
            if faults.split_segments or faults.coalesce:
                await self._write_in_pieces(data, small=faults.split_segments)
            else:
                self.writer.write(data)
                await self.writer.drain()

    async def _write_in_pieces(self, data: bytes, small: bool) -> None:
        rnd = self.owner._random
        offset = 0
        while offset < len(data):
            size = rnd.randint(1, 13) if small else rnd.randint(20, 400)
            self.writer.write(data[offset : offset + size])
            await self.writer.drain()
            await asyncio.sleep(0.0005 if small else 0.002)
            offset += size

    async def _keepalive_loop(self) -> None:
        faults = self.owner.faults
        last = time.monotonic()
        while True:
            await asyncio.sleep(min(0.05, self.keepalive_ms / 1000 or 0.05))
            now = time.monotonic()
            if not self.keepalive_ms or now - last < self.keepalive_ms / 1000:
                continue
            last = now
            if not faults.stop_keepalives:
                self.send(llrp.keepalive(self.next_id()))

    async def _inventory_loop(self) -> None:
        while True:
            await asyncio.sleep(self.owner.tick_s)
            rospec = self.rospec
            if not self.inventorying or rospec is None:
                continue
            if self.owner.burst:
                self._burst(rospec)
                continue
            self._observe(rospec)
            self._report(rospec)

    def _observe(self, rospec: ROSpecSummary) -> None:
        reads = self.owner.field.reads(rospec.antennas or None)
        if not reads:
            return
        now_us = self.owner.reader_time_us()
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        for read in reads:
            channel = 1 + (now_us // 200_000) % len(self.owner.model.hop_table_khz)
            self._pending.append(
                TagObservation(read.epc, read.antenna, read.rssi, now_us, now_us, 1, channel)
            )
        if len(self._pending) > MAX_BUFFERED_TAGS:
            del self._pending[: len(self._pending) - MAX_BUFFERED_TAGS]

    def _report(self, rospec: ROSpecSummary) -> None:
        batch = rospec.batch_size
        if batch is None or not self._pending:
            return  # no report trigger: a real reader keeps the tags until the AISpec ends
        flush = rospec.flush_ms
        waited_ms = (time.monotonic() - (self._pending_since or 0.0)) * 1000
        if len(self._pending) < batch and (flush is None or waited_ms < flush):
            return
        uptime = self.owner.faults.uptime_timestamps
        encode: Callable[[TagObservation], bytes] = lambda tag: llrp.tag_report_data(  # noqa: E731
            tag, rospec.selector, rospec.rospec_id, uptime
        )
        messages = []
        for start in range(0, len(self._pending), batch):
            chunk = [encode(tag) for tag in self._pending[start : start + batch]]
            messages.append(llrp.ro_access_report(chunk, self.next_id()))
            self.owner.tags_reported += len(chunk)
        self.owner.reports_sent += len(messages)
        self._pending = []
        self._pending_since = None
        self.send(b"".join(messages))

    def _burst(self, rospec: ROSpecSummary) -> None:
        """Keep the socket full: blocks of reports of every tag in the field, re-encoded (with
        fresh timestamps) every 0.2 s and otherwise sent again as they are."""
        if rospec.batch_size is None or self._outbox.qsize() >= 2:
            return
        now = time.monotonic()
        if self._burst_block is None or now - self._burst_encoded_at > 0.2:
            wanted = set(rospec.antennas)
            present = [p for p in self.owner.field.active() if not wanted or p.antenna in wanted]
            if not present:
                return
            now_us = self.owner.reader_time_us()
            tags = [TagObservation(p.epc, p.antenna, round(p.rssi), now_us, now_us)
                    for p in present] * max(1, 2000 // len(present))
            uptime = self.owner.faults.uptime_timestamps
            encoded = [llrp.tag_report_data(t, rospec.selector, rospec.rospec_id, uptime)
                       for t in tags]
            batch = rospec.batch_size
            self._burst_block = b"".join(
                llrp.ro_access_report(encoded[i : i + batch], self.next_id())
                for i in range(0, len(encoded), batch)
            )
            self._burst_tags = len(encoded)
            self._burst_messages = (len(encoded) + batch - 1) // batch
            self._burst_encoded_at = now
        self.owner.tags_reported += self._burst_tags
        self.owner.reports_sent += self._burst_messages
        self.send(self._burst_block)

    def send_truncated_report(self) -> None:
        rospec = self.rospec
        if rospec is None:
            return
        now_us = self.owner.reader_time_us()
        tag = TagObservation(FAKE_EPC, rospec.antennas[0] if rospec.antennas else 1, -60,
                             now_us, now_us)
        data = llrp.tag_report_data(tag, rospec.selector, rospec.rospec_id)
        self.send(llrp.ro_access_report([llrp.truncate_parameter(data)], self.next_id()))
