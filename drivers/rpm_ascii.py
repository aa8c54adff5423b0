"""A radiation portal monitor that writes the ASCII line protocol, over TCP or a serial line.

The lines go through the same `OccupancyTracker` as `gated rpm analyze`. The monitor is
healthy while lines arrive (an idle monitor sends backgrounds about every 5 s) and it reports
no background fault (GH/GL/NH) and no tamper (TT). A lost connection or a silent line ends a
running occupancy incomplete.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from drivers.modbus import Backoff
from drivers.rpm_base import RadiationMonitor
from drivers.rpm_lines import Occupancy, OccupancyTracker
from drivers.serial_line import SerialLine
from gated.config import RpmConfig, SerialDeviceConfig
from gated.domain import DeviceHealth, utcnow

_LOGGER = logging.getLogger(__name__)

MAX_LINE = 4096


class StreamLost(Exception):
    """The TCP stream closed, went silent or sent something that is not lines."""


class AsciiRadiationMonitor(RadiationMonitor):
    """The ASCII line transport (`ascii_tcp` or `ascii_serial`)."""

    def __init__(self, lane: str, config: RpmConfig, sigma: float, **callbacks: Any) -> None:
        super().__init__(lane, config, sigma, **callbacks)
        self.tracker = OccupancyTracker(self.sigma)
        self._buffer = b""
        self._connected = False
        self._line_no = 0

    async def run(self) -> None:
        try:
            if self.config.transport == "ascii_serial":
                await self._run_serial()
            else:
                await self._run_tcp()
        finally:
            self._connection_down("stopped")

    # --- transports ------------------------------------------------------------------------

    async def _run_tcp(self) -> None:
        assert self.config.host is not None and self.config.port is not None
        backoff = Backoff(first_s=0.2, cap_s=self.config.backoff_cap_s)
        while True:
            writer = None
            try:
                async with asyncio.timeout(self.config.timeout_s * 3):
                    reader, writer = await asyncio.open_connection(
                        self.config.host, self.config.port, limit=MAX_LINE
                    )
                self._joined()
                await self._read_lines(reader, backoff)
            except (OSError, TimeoutError, StreamLost) as exc:
                delay = backoff.next()
                # the loss itself is logged once by _set_health; every retry only at debug
                _LOGGER.debug(
                    "lane %s: RPM %s: %s; retrying in %.1f s",
                    self.lane, self.where, exc or type(exc).__name__, delay,
                )
                self._connection_down(f"connection lost: {exc or type(exc).__name__}")
                await asyncio.sleep(delay)
            finally:
                if writer is not None:
                    writer.close()
                    try:
                        await writer.wait_closed()
                    except OSError:
                        pass

    async def _read_lines(self, reader: asyncio.StreamReader, backoff: Backoff) -> None:
        timeout = self.config.line_timeout_s
        while True:
            try:
                async with asyncio.timeout(timeout):
                    raw = await reader.readuntil(b"\n")
            except TimeoutError as exc:
                raise StreamLost(f"no line for {timeout:g} s") from exc
            except asyncio.IncompleteReadError as exc:
                raise StreamLost("closed by the monitor") from exc
            except asyncio.LimitOverrunError as exc:
                raise StreamLost(f"line longer than {MAX_LINE} bytes") from exc
            backoff.reset()
            self._take_line(raw)

    async def _run_serial(self) -> None:
        assert self.config.serial_port is not None
        line = SerialLine(
            self.lane,
            "rpm",
            SerialDeviceConfig(
                port=self.config.serial_port,
                baudrate=self.config.baudrate,
                backoff_cap_s=self.config.backoff_cap_s,
            ),
            self._serial_health,
            silence_s=self.config.line_timeout_s,
        )
        await line.run(self._take_bytes)

    def _serial_health(self, health: DeviceHealth) -> None:
        if health.up:
            if not self._connected:
                self._joined()
            self._update_health()
        else:
            self._connection_down(health.detail)

    def _take_bytes(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            self._take_line(raw)
        if len(self._buffer) > MAX_LINE:
            self._buffer = b""
            self.tracker.feed_text("<overlong line>", self._line_no)

    # --- lines -----------------------------------------------------------------------------

    def _take_line(self, raw: bytes) -> None:
        self._line_no += 1
        was_occupied = self.tracker.occupied
        bad_before = self.tracker.bad_lines
        occupancy = self.tracker.feed_text(
            raw.decode("ascii", errors="replace"), self._line_no, received_at=utcnow()
        )
        if self.tracker.bad_lines > bad_before and self.tracker.bad_lines in (1, 10, 100, 1000):
            _LOGGER.warning(
                "lane %s: RPM %s sent %d bad lines, latest: %s",
                self.lane, self.where, self.tracker.bad_lines, self.tracker.last_error,
            )
        if occupancy is not None:
            self._finish(occupancy)
        if self.tracker.occupied and not was_occupied:
            self._set_occupied(True)
        self._update_health()

    def _finish(self, occupancy: Occupancy) -> None:
        self._set_occupied(False)
        self._emit(occupancy.to_scan(self.lane))

    def _update_health(self) -> None:
        if not self._connected:
            return
        problems = sorted(self.tracker.faults)
        if self.tracker.tamper:
            problems.append("tamper")
        self._set_health(not problems, "; ".join(problems))

    def _joined(self) -> None:
        """A new connection: backgrounds from before it are not trusted, so an occupancy met
        halfway (no background on this connection yet) is judged incomplete, not clean."""
        self._connected = True
        self.tracker.gamma_background = None
        self.tracker.neutron_background = None

    def _connection_down(self, reason: str) -> None:
        self._connected = False
        self._buffer = b""
        cut = self.tracker.cut("connection_lost", at=utcnow())
        if cut is not None:
            self._finish(cut)
        self._set_health(False, reason)
