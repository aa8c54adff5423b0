"""A serial line read from asyncio: open, read, report health, reopen with capped back-off.

pyserial opens and configures the port; bytes are read with the event loop watching the file
descriptor, so no thread is involved. Ports without a file descriptor (pyserial URLs such as
socket://) are polled instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

import serial

from gated.config import SerialDeviceConfig
from gated.domain import DeviceHealth

_LOGGER = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 0.5
POLL_INTERVAL_S = 0.02

HealthCallback = Callable[[DeviceHealth], None]


class LineLost(Exception):
    """The port failed while open (unplugged, pty closed, read error)."""


def open_port(config: SerialDeviceConfig) -> serial.Serial:
    """Open and configure a serial port for non-blocking use (8N1, no flow control)."""
    port = serial.serial_for_url(config.port, do_not_open=True)
    port.baudrate = config.baudrate
    port.timeout = 0
    port.write_timeout = 2.0
    port.open()
    return port


def port_fileno(port: serial.Serial) -> int | None:
    try:
        return int(port.fileno())
    except (AttributeError, OSError, ValueError, serial.SerialException):
        return None


class SerialLine:
    """Keeps one serial port open and feeds its bytes to `on_bytes`.

    Health goes down once when the port fails (or stays silent longer than `silence_s`) and up
    once when it works again; the same goes for the log.
    """

    def __init__(
        self,
        lane: str,
        device: str,
        config: SerialDeviceConfig,
        on_health: HealthCallback,
        *,
        silence_s: float | None = None,
    ) -> None:
        self.lane = lane
        self.device = device
        self.config = config
        self.silence_s = silence_s
        self.backoff_cap_s = config.backoff_cap_s
        self._on_health = on_health
        self._up: bool | None = None
        self.port: serial.Serial | None = None

    def _health(self, up: bool, detail: str) -> None:
        if self._up is up:
            return
        self._up = up
        if up:
            _LOGGER.info("lane %s: %s on %s up", self.lane, self.device, self.config.port)
        else:
            _LOGGER.warning(
                "lane %s: %s on %s lost: %s", self.lane, self.device, self.config.port, detail
            )
        self._on_health(DeviceHealth(lane=self.lane, device=self.device, up=up, detail=detail))

    async def run(self, on_bytes: Callable[[bytes], None]) -> None:
        """Read until cancelled, reopening the port after every failure."""
        backoff = INITIAL_BACKOFF_S
        while True:
            try:
                self.port = open_port(self.config)
            except (OSError, serial.SerialException, ValueError) as exc:
                self._health(False, f"cannot open: {exc}")
            else:
                backoff = INITIAL_BACKOFF_S
                try:
                    await self._read_until_lost(self.port, on_bytes)
                except LineLost as exc:
                    self._health(False, str(exc))
                finally:
                    self._close()
            _LOGGER.debug(
                "lane %s: %s reopening %s in %.1f s",
                self.lane, self.device, self.config.port, backoff,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_cap_s)

    def _close(self) -> None:
        port, self.port = self.port, None
        if port is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                port.close()

    async def _read_until_lost(
        self, port: serial.Serial, on_bytes: Callable[[bytes], None]
    ) -> None:
        fd = port_fileno(port)
        if self.silence_s is None:
            self._health(True, "open")
        if fd is None:
            await self._poll(port, on_bytes)
            return

        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | Exception] = asyncio.Queue()

        def readable() -> None:
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                return
            except OSError as exc:
                loop.remove_reader(fd)
                chunks.put_nowait(exc)
                return
            if not data:
                loop.remove_reader(fd)
                chunks.put_nowait(EOFError("end of file"))
                return
            chunks.put_nowait(data)

        loop.add_reader(fd, readable)
        try:
            while True:
                item = await self._next(chunks)
                if isinstance(item, Exception):
                    raise LineLost(f"read failed: {item}")
                self._deliver(item, on_bytes)
        finally:
            loop.remove_reader(fd)

    async def _next(self, chunks: asyncio.Queue[bytes | Exception]) -> bytes | Exception:
        if self.silence_s is None:
            return await chunks.get()
        try:
            async with asyncio.timeout(self.silence_s):
                return await chunks.get()
        except TimeoutError:
            self._health(False, f"no data for {self.silence_s:g} s")
            return await chunks.get()

    def _deliver(self, data: bytes, on_bytes: Callable[[bytes], None]) -> None:
        if self.silence_s is not None:
            self._health(True, "data flowing")
        try:
            on_bytes(data)
        except Exception:
            # a parser bug must not take the line down; the bytes are lost, the line stays
            _LOGGER.exception(
                "lane %s: %s could not handle %d bytes", self.lane, self.device, len(data)
            )

    async def _poll(self, port: serial.Serial, on_bytes: Callable[[bytes], None]) -> None:
        quiet_s = 0.0
        while True:
            try:
                data = port.read(max(1, port.in_waiting))
            except (OSError, serial.SerialException) as exc:
                raise LineLost(f"read failed: {exc}") from exc
            if data:
                quiet_s = 0.0
                self._deliver(data, on_bytes)
                continue
            quiet_s += POLL_INTERVAL_S
            if self.silence_s is not None and quiet_s >= self.silence_s:
                self._health(False, f"no data for {self.silence_s:g} s")
            await asyncio.sleep(POLL_INTERVAL_S)
