"""What a lane needs from its devices, as small interfaces the drivers satisfy.

The lane depends on these shapes, not on the driver modules, so it can run with any mix of
real, simulated or absent devices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gated.domain import ContainerRead, CredentialCheck, FusedContainer


@dataclass(frozen=True)
class PlcInputs:
    """The lane's sensors as the PLC last reported them."""

    entry_loop: bool
    exit_loop: bool
    photo_eye: bool
    container_present: bool | None = None  # None: no presence sensor at this lane
    container_count: int | None = None  # None: no profile scanner at this lane


class BarrierPort(Protocol):
    @property
    def problem(self) -> str | None:
        """Why the PLC cannot be used right now, or None when it can."""

    async def open_barrier(self) -> None: ...

    async def close_barrier(self) -> None: ...

    async def set_light(self, colour: str) -> None: ...


class MonitorPort(Protocol):
    @property
    def problem(self) -> str | None:
        """Why the radiation monitor cannot be trusted right now (fault, tamper, lost)."""


class PrinterPort(Protocol):
    async def print_ticket(self, lines: list[str], title: str) -> None: ...


@dataclass(frozen=True)
class CapturedImage:
    camera: str
    path: str | None
    error: str | None = None


class CapturePort(Protocol):
    async def capture(self, transaction_uuid: str) -> list[CapturedImage]: ...


class OcrPort(Protocol):
    def read(self, path: str, camera: str | None) -> ContainerRead: ...

    def fuse(self, reads: Sequence[ContainerRead]) -> list[FusedContainer]: ...


class CredentialPort(Protocol):
    def check(self, session: Any, card: Any, company_code: str | None) -> CredentialCheck:
        """Check a presented card (driver object, kept in memory only) against the database."""
