"""A simulated serial device: a pty pair whose slave side is reached through a symlink.

The driver opens the symlink as it would open /dev/ttyUSB0. The device writes on the master
side; bytes nobody reads are dropped once the pty's buffer is full, like a real line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import Callable
from pathlib import Path

_LOGGER = logging.getLogger(__name__)


class PtyDevice:
    """One end of a simulated serial cable, reachable at `link_path`."""

    def __init__(self, link_path: str | Path, name: str) -> None:
        self.link_path = Path(link_path)
        self.name = name
        self.dropped_bytes = 0
        self._master = -1
        self._slave = -1
        self._on_bytes: Callable[[bytes], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.plug()

    @property
    def connected(self) -> bool:
        return self._master >= 0

    def plug(self) -> None:
        """Create the pty pair and point the symlink at its slave (again, after `unplug`)."""
        if self.connected:
            return
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing before the driver configures it
        os.set_blocking(self._master, False)
        slave_name = os.ttyname(self._slave)
        self.link_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.link_path.with_name(self.link_path.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        temporary.symlink_to(slave_name)
        os.replace(temporary, self.link_path)
        if self._on_bytes is not None and self._loop is not None:
            self._loop.add_reader(self._master, self._readable)
        _LOGGER.debug("%s: on %s -> %s", self.name, self.link_path, slave_name)

    def unplug(self) -> None:
        """Pull the cable: the driver's reads fail until `plug` is called."""
        if not self.connected:
            return
        if self._loop is not None and self._on_bytes is not None:
            self._loop.remove_reader(self._master)
        os.close(self._master)
        os.close(self._slave)
        self._master = self._slave = -1

    def close(self) -> None:
        self.unplug()
        with contextlib.suppress(FileNotFoundError):
            self.link_path.unlink()

    def write(self, data: bytes) -> None:
        if not self.connected:
            self.dropped_bytes += len(data)
            return
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            written = 0
        self.dropped_bytes += len(data) - written

    def listen(self, on_bytes: Callable[[bytes], None]) -> None:
        """Call `on_bytes` from the running event loop with what the driver writes."""
        self._loop = asyncio.get_running_loop()
        self._on_bytes = on_bytes
        if self.connected:
            self._loop.add_reader(self._master, self._readable)

    def stop_listening(self) -> None:
        if self._loop is not None and self.connected and self._on_bytes is not None:
            self._loop.remove_reader(self._master)
        self._on_bytes = None

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # EIO: nobody holds the slave; our own slave fd keeps that rare
        if data and self._on_bytes is not None:
            self._on_bytes(data)
