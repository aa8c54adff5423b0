"""The gate's domain types: small, immutable facts that device adapters produce and lanes use.

Adapters in `ocr/`, `rfid/`, `drivers/` and `tos_bridge/` import these types; this module
imports nothing from them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the only kind of time the gate stores)."""
    return datetime.now(UTC)


class Decision(enum.StrEnum):
    PROCEED = "PROCEED"
    TROUBLE = "TROUBLE"
    INSPECTION = "INSPECTION"


class TransactionState(enum.StrEnum):
    ARRIVING = "arriving"
    IDENTIFYING = "identifying"
    DECIDING = "deciding"
    PROCEED = "proceed"
    TROUBLE = "trouble"
    INSPECTION = "inspection"
    LEAVING = "leaving"
    CLOSED = "closed"


class MoveKind(enum.StrEnum):
    GATE_IN = "gate_in"
    GATE_OUT = "gate_out"
    YARD = "yard"


@dataclass(frozen=True)
class Reason:
    """Why a decision went the way it did: a stable code for machines, a sentence for people."""

    code: str
    text: str
    blocking: bool = True


@dataclass(frozen=True)
class DecisionResult:
    decision: Decision
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class ContainerRead:
    """One image's reading of one container number (or of none)."""

    image: str
    camera: str | None
    container_number: str | None
    size_type: str | None
    confidence: float
    layout: str | None = None
    region: tuple[int, int, int, int] | None = None  # x, y, w, h in the image
    error: str | None = None
    elapsed_ms: float = 0.0


@dataclass(frozen=True)
class FusedContainer:
    """The answer for one container of a visit, fused from every image that saw it."""

    container_number: str
    size_type: str | None
    confidence: float
    images: tuple[str, ...]
    disagreeing_images: tuple[str, ...] = ()


@dataclass(frozen=True)
class TagRead:
    """One deduplicated RFID read."""

    epc: str  # uppercase hex
    reader: str
    antenna: int
    rssi: float | None
    seen_at: datetime  # host clock; reader clocks are not trusted blindly
    reader_time: datetime | None = None
    seen_count: int = 1


@dataclass(frozen=True)
class RadiationSample:
    at: datetime
    gamma: tuple[float, ...]
    neutron: tuple[float, ...]


@dataclass(frozen=True)
class RadiationScan:
    """One occupancy of a radiation portal monitor, evaluated by the monitor and by the daemon."""

    lane: str
    occupancy_id: int | None
    started_at: datetime
    ended_at: datetime | None
    complete: bool
    monitor_gamma_alarm: bool
    monitor_neutron_alarm: bool
    gamma_alarm: bool
    neutron_alarm: bool
    peak_gamma_sigma: tuple[float, ...] = ()
    peak_neutron_sigma: tuple[float, ...] = ()
    faults: tuple[str, ...] = ()
    profile: tuple[RadiationSample, ...] = ()

    @property
    def alarm(self) -> bool:
        return (
            self.monitor_gamma_alarm
            or self.monitor_neutron_alarm
            or self.gamma_alarm
            or self.neutron_alarm
        )

    @property
    def clean(self) -> bool:
        """A scan that lets a truck pass: complete, no alarm of either kind, no fault."""
        return self.complete and not self.alarm and not self.faults


@dataclass(frozen=True)
class CredentialCheck:
    """The result of checking a driver's credential. Never holds the full FASC-N."""

    valid: bool
    reasons: tuple[Reason, ...]
    fascn_hash: str | None
    credential_last4: str | None
    biometric_status: str | None = None
    biometric_score: int | None = None
    checked_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class WeightReading:
    gross_kg: float
    stable: bool
    at: datetime


@dataclass(frozen=True)
class Move:
    """A resolved container move for the TOS."""

    kind: MoveKind
    container_number: str
    from_location: str | None
    to_location: str | None
    at: datetime
    truck: str | None = None
    chassis: str | None = None
    machine: str | None = None
    lane: str | None = None


@dataclass(frozen=True)
class DeviceHealth:
    """A device's state as the lane board and the TOS see it."""

    lane: str | None
    device: str
    up: bool
    detail: str = ""
    since: datetime = field(default_factory=utcnow)
