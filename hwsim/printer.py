"""A simulated ESC/POS ticket printer on a pty: it answers status requests, decodes what it is
sent and keeps each printed ticket's text in `tickets` for tests and the world model to read.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from hwsim.pty_device import PtyDevice

_LOGGER = logging.getLogger(__name__)

ESC, GS, DLE, EOT, LF = 0x1B, 0x1D, 0x10, 0x04, 0x0A
# commands this printer knows, by prefix, with the number of argument bytes
_ARGUMENTS = {
    (ESC, 0x40): 0,  # initialise
    (ESC, 0x74): 1,  # code page
    (ESC, 0x61): 1,  # alignment
    (ESC, 0x45): 1,  # emphasis
    (ESC, 0x64): 1,  # feed n lines
    (ESC, 0x21): 1,  # print mode
    (GS, 0x21): 1,  # character size
    (DLE, EOT): 1,  # real-time status
}


@dataclass
class PrintedTicket:
    lines: list[str] = field(default_factory=list)
    raw: bytes = b""

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class SimulatedPrinter:
    """An ESC/POS printer reachable at `link_path`. Set `paper_out` or `offline` to fail."""

    def __init__(self, link_path: str | Path) -> None:
        self.device = PtyDevice(link_path, "simulated printer")
        self.tickets: list[PrintedTicket] = []
        self.paper_out = False
        self.offline = False
        self.unknown_commands = 0
        self._pending = bytearray()
        self._raw = bytearray()
        self._line = bytearray()
        self._lines: list[str] = []
        self._cut_seen = asyncio.Event()

    @property
    def link_path(self) -> Path:
        return self.device.link_path

    async def start(self) -> None:
        self.device.listen(self._receive)

    async def close(self) -> None:
        self.device.stop_listening()
        self.device.close()

    async def wait_for_tickets(self, count: int, timeout_s: float = 5.0) -> list[PrintedTicket]:
        """Wait until `count` tickets have been cut (bytes may still be in the pty)."""
        async with asyncio.timeout(timeout_s):
            while len(self.tickets) < count:
                self._cut_seen.clear()
                await self._cut_seen.wait()
        return self.tickets

    async def __aenter__(self) -> SimulatedPrinter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _receive(self, data: bytes) -> None:
        self._pending += data
        while self._pending:
            used = self._step(self._pending)
            if used == 0:
                return  # a command waits for its argument bytes
            del self._pending[:used]

    def _step(self, data: bytearray) -> int:
        byte = data[0]
        if byte in (ESC, GS, DLE):
            if len(data) < 2:
                return 0
            if (byte, data[1]) == (GS, 0x56):  # cut: m, and n for m = 65 or 66
                size = 4 if len(data) > 2 and data[2] in (65, 66) else 3
                if len(data) < size:
                    return 0
                self._cut()
                return size
            arguments = _ARGUMENTS.get((byte, data[1]))
            if arguments is None:
                self.unknown_commands += 1
                return 1
            if len(data) < 2 + arguments:
                return 0
            self._command(byte, data[1], bytes(data[2 : 2 + arguments]))
            return 2 + arguments
        if not (self.paper_out or self.offline):
            self._raw.append(byte)
            if byte == LF:
                self._lines.append(self._line.decode("cp437"))
                self._line.clear()
            elif byte >= 0x20:
                self._line.append(byte)
        return 1

    def _command(self, prefix: int, code: int, arguments: bytes) -> None:
        if (prefix, code) == (DLE, EOT):
            self.device.write(bytes([self._status(arguments[0])]))
        elif (prefix, code) == (ESC, 0x64) and not (self.paper_out or self.offline):
            self._lines.extend([""] * arguments[0])

    def _status(self, which: int) -> int:
        status = 0x12  # the fixed bits of every status byte
        if which == 1 and self.offline:
            status |= 0x08
        if which == 4 and self.paper_out:
            status |= 0x60
        return status

    def _cut(self) -> None:
        if self.paper_out or self.offline:
            return
        if self._line:
            self._lines.append(self._line.decode("cp437"))
        while self._lines and self._lines[-1] == "":
            self._lines.pop()
        self.tickets.append(PrintedTicket(self._lines, bytes(self._raw)))
        _LOGGER.debug("simulated printer: ticket %d cut", len(self.tickets))
        self._lines, self._line, self._raw = [], bytearray(), bytearray()
        self._cut_seen.set()
