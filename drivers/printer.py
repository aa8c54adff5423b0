"""The lane's ticket printer: ESC/POS over a serial line.

Before each ticket the printer is asked for its state (DLE EOT 1, DLE EOT 4): no answer, offline
or out of paper raise PrinterError, so the lane can tell the driver to see a clerk instead of
waving a truck on without its ticket. Text is printed in code page 437; what it cannot hold
prints as '?'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import textwrap

import serial

from drivers.serial_line import HealthCallback, open_port, port_fileno
from gated.config import PrinterConfig
from gated.domain import DeviceHealth

_LOGGER = logging.getLogger(__name__)

ESC, GS, DLE, EOT, LF = 0x1B, 0x1D, 0x10, 0x04, 0x0A
INITIALIZE = bytes([ESC, 0x40])
CODE_PAGE_437 = bytes([ESC, 0x74, 0])
CENTER, LEFT = bytes([ESC, 0x61, 1]), bytes([ESC, 0x61, 0])
BOLD_ON, BOLD_OFF = bytes([ESC, 0x45, 1]), bytes([ESC, 0x45, 0])
DOUBLE_SIZE, NORMAL_SIZE = bytes([GS, 0x21, 0x11]), bytes([GS, 0x21, 0x00])
FEED_AND_CUT = bytes([ESC, 0x64, 4, GS, 0x56, 66, 0])  # feed 4 lines, then a partial cut
PRINTER_STATUS = bytes([DLE, EOT, 1])
PAPER_STATUS = bytes([DLE, EOT, 4])
STATUS_OFFLINE = 0x08
STATUS_FIXED_MASK = 0x93
STATUS_FIXED_BITS = 0x12
PAPER_NEAR_END = 0x0C
PAPER_END = 0x60


class PrinterError(Exception):
    """The ticket was not printed."""


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


def _text(line: str) -> bytes:
    return line.encode("cp437", errors="replace")


def _wrap(line: str, width: int) -> list[str]:
    return textwrap.wrap(line, width, break_long_words=True, replace_whitespace=False) or [""]


def render_ticket(title: str, lines: list[str], width: int) -> bytes:
    """ESC/POS bytes of one ticket: title centred in double size, lines wrapped to `width`."""
    out = bytearray(INITIALIZE + CODE_PAGE_437 + CENTER + DOUBLE_SIZE + BOLD_ON)
    for part in _wrap(title, width // 2):
        out += _text(part) + bytes([LF])
    out += NORMAL_SIZE + BOLD_OFF + LEFT
    for line in lines:
        for part in _wrap(line, width):
            out += _text(part) + bytes([LF])
    out += FEED_AND_CUT
    return bytes(out)


class TicketPrinter:
    """Prints tickets on the lane printer; one ticket at a time, the port opened per ticket."""

    def __init__(
        self,
        lane: str,
        config: PrinterConfig,
        *,
        on_health: HealthCallback | None = None,
    ) -> None:
        self.lane = lane
        self.config = config
        self.status_timeout_s = config.status_timeout_s
        self._on_health = on_health
        self._lock = asyncio.Lock()
        self._up: bool | None = None
        self.printed = 0
        self.failed = 0

    async def print_ticket(self, lines: list[str], title: str) -> None:
        """Print one ticket; raise PrinterError (and count it) when it could not be printed."""
        data = render_ticket(title, lines, self.config.width_chars)
        async with self._lock:
            try:
                await self._print(data)
            except PrinterError as exc:
                self.failed += 1
                self._health(False, str(exc))
                raise
        self.printed += 1
        self._health(True, "printing")
        _LOGGER.info("lane %s: printer: ticket %r printed (%d lines)", self.lane, title, len(lines))

    async def _print(self, data: bytes) -> None:
        try:
            port = open_port(self.config)
        except (OSError, serial.SerialException, ValueError) as exc:
            raise PrinterError(f"cannot open {self.config.port}: {exc}") from exc
        try:
            port.reset_input_buffer()
            status = await self._ask(port, PRINTER_STATUS)
            if status & STATUS_OFFLINE:
                raise PrinterError("printer is offline (cover open or error)")
            paper = await self._ask(port, PAPER_STATUS)
            if paper & PAPER_END:
                raise PrinterError("printer is out of paper")
            if paper & PAPER_NEAR_END:
                _LOGGER.warning("lane %s: printer: paper near its end", self.lane)
            await self._write(port, data)
        except (OSError, serial.SerialException) as exc:
            raise PrinterError(f"serial line failed: {exc}") from exc
        finally:
            with contextlib.suppress(OSError, serial.SerialException):
                port.close()

    async def _ask(self, port: serial.Serial, request: bytes) -> int:
        await self._write(port, request)
        deadline = asyncio.get_running_loop().time() + self.status_timeout_s
        while asyncio.get_running_loop().time() < deadline:
            answer = port.read(1)
            if answer:
                # ESC/POS fixes bits 1 and 4 set, 0 and 7 clear: anything else is not a
                # printer's status (a modem, a loopback plug, the wrong device)
                if answer[0] & STATUS_FIXED_MASK != STATUS_FIXED_BITS:
                    raise PrinterError(
                        f"status answer 0x{answer[0]:02x} is not an ESC/POS printer's"
                    )
                return answer[0]
            await self._readable(port, deadline)
        raise PrinterError(f"no answer to a status request within {self.status_timeout_s:g} s")

    async def _readable(self, port: serial.Serial, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        fd = port_fileno(port)
        if fd is None:
            await asyncio.sleep(0.02)
            return
        ready = loop.create_future()
        loop.add_reader(fd, _wake, ready)
        try:
            async with asyncio.timeout_at(deadline):
                await ready
        except TimeoutError:
            pass
        finally:
            loop.remove_reader(fd)

    async def _write(self, port: serial.Serial, data: bytes) -> None:
        fd = port_fileno(port)
        if fd is None:
            port.write(data)
            return
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view:
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                written = 0
            view = view[written:]
            if view:
                ready = loop.create_future()
                loop.add_writer(fd, _wake, ready)
                try:
                    async with asyncio.timeout(5.0):
                        await ready
                except TimeoutError:
                    raise PrinterError("printer does not take data (flow stopped)") from None
                finally:
                    loop.remove_writer(fd)

    def _health(self, up: bool, detail: str) -> None:
        previous, self._up = self._up, up
        if previous is up:
            return
        if not up:
            _LOGGER.warning("lane %s: printer on %s lost: %s", self.lane, self.config.port, detail)
        elif previous is not None:
            _LOGGER.info("lane %s: printer on %s recovered", self.lane, self.config.port)
        if self._on_health is not None:
            self._on_health(DeviceHealth(lane=self.lane, device="printer", up=up, detail=detail))
