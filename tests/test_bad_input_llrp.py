"""A hostile or broken LLRP reader on loopback: garbage, impossible lengths, unknown message
types, stalls, resets. The supervisor keeps running, reports the reader down once, invents no
read, leaves no thread, and picks up reads as soon as a real reader answers on that port."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct

import pytest

from hwsim.llrp import SimulatedReader
from rfid import ReaderSupervisor
from tests.llrp_helpers import EPC_TRUCK, Recorder, reader_config, supervised
from tests.servers import free_port


def _header(message_type: int, length: int, message_id: int = 1) -> bytes:
    return struct.pack(">HII", (1 << 10) | message_type, length, message_id)


def _garbage(_: int) -> bytes:
    return random.Random(4).randbytes(4096)


def _huge_length(_: int) -> bytes:
    return _header(63, 0xFFFFFFFF)  # READER_EVENT_NOTIFICATION of 4 GB, never finished


def _short_length(_: int) -> bytes:
    return _header(63, 3) + b"\x00" * 64


def _unknown_types(count: int) -> bytes:
    return b"".join(_header(900 + i % 100, 14, i) + b"\xde\xad\xbe\xef" for i in range(count))


def _wrong_version(_: int) -> bytes:
    return struct.pack(">HII", (7 << 10) | 63, 10, 1) * 50


def _zero_bytes(_: int) -> bytes:
    return b"\x00" * 1000


BEHAVIOURS = {
    "garbage": _garbage,
    "huge-length": _huge_length,
    "short-length": _short_length,
    "unknown-types": _unknown_types,
    "wrong-version": _wrong_version,
    "zeros": _zero_bytes,
    "stall": None,
    "close": "close",
    "reset": "reset",
}


class HostileReader:
    """Accepts LLRP clients and answers each with one kind of nonsense."""

    def __init__(self, port: int, behaviour: str) -> None:
        self.port = port
        self.behaviour = behaviour
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        action = BEHAVIOURS[self.behaviour]
        try:
            if action == "close":
                return
            if action == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if callable(action):
                # keep talking nonsense so that a client which counts any byte as life is fed
                for round_ in range(200):
                    writer.write(action(round_ + 20))
                    await writer.drain()
                    await asyncio.sleep(0.05)
            else:
                await reader.read()  # stall: read what the client sends, answer nothing
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


@pytest.mark.parametrize("behaviour", list(BEHAVIOURS))
async def test_hostile_reader_then_a_real_one(behaviour: str) -> None:
    port = free_port()
    hostile = HostileReader(port, behaviour)
    await hostile.start()
    recorder = Recorder()
    supervisor = ReaderSupervisor(
        "portal-x", reader_config(port, watchdog_s=0.5), recorder.on_read, recorder.on_health,
        lane="1",
    )
    async with supervised(supervisor) as task:
        await recorder.until(lambda: hostile.accepted >= 2, within_s=8)
        assert not task.done(), "the supervisor stopped on a hostile reader"
        assert recorder.reads == [], "a read invented from nonsense"
        assert recorder.states == [False], "down reported once, not per attempt"
        assert recorder.health[0].device == "portal-x" and recorder.health[0].detail
        await hostile.stop()
        real = SimulatedReader(port=port, tick_s=0.005, seed=2)
        real.field.show(EPC_TRUCK, antenna=1, rate=50)
        await real.start()
        try:
            await recorder.reads_after(2, EPC_TRUCK, within_s=8)
            assert recorder.states == [False, True]
        finally:
            await real.stop()
    assert {r.epc for r in recorder.reads} == {EPC_TRUCK}


async def test_cancel_while_a_refused_connect_fails_stops_the_supervisor() -> None:
    """A stop that lands as a connect is refused still stops the supervisor (Python 3.11's
    wait_for used to lose that cancel, and the daemon's stop then hung for good)."""
    port = free_port()  # nothing listens: every connect is refused at once
    config = reader_config(port, backoff_cap_s=0.001)
    rng = random.Random(7)
    for _ in range(150):
        supervisor = ReaderSupervisor(
            "gone", config, lambda _read: None, lambda _health: None, first_retry_s=0.0
        )
        task = asyncio.create_task(supervisor.run())
        for _ in range(rng.randrange(1, 40)):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=3.0)
        assert done, "the supervisor did not stop when cancelled"
