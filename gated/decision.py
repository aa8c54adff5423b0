"""The gate decision: a pure function of one visit's evidence and what the TOS told us.

Every rule adds a reason a clerk can read. INSPECTION wins over TROUBLE, TROUBLE over PROCEED.
The rule of the gate fails closed: no PROCEED without a complete clean radiation scan from a
healthy monitor and a valid credential.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from gated.domain import (
    CredentialCheck,
    Decision,
    DecisionResult,
    FusedContainer,
    RadiationScan,
    Reason,
    WeightReading,
)


@dataclass(frozen=True)
class AppointmentFact:
    reference: str
    direction: str  # "in": container delivered to the terminal; "out": container collected
    container_number: str | None
    company_code: str | None
    truck_epc: str | None
    window_start: datetime | None
    window_end: datetime | None
    yard_position: str | None


@dataclass(frozen=True)
class HoldFact:
    container_number: str
    kind: str  # customs, line, terminal
    reason: str | None


@dataclass(frozen=True)
class TruckFact:
    epc: str
    known: bool
    company_code: str | None
    plate: str | None = None


@dataclass(frozen=True)
class Evidence:
    """Everything the lane gathered for one truck."""

    lane_direction: str
    at: datetime
    containers: tuple[FusedContainer, ...] = ()
    unreadable_container_seen: bool = False  # a code region found but not read with confidence
    container_sensed: bool | None = None  # the lane's presence sensor; None: no sensor
    container_count: int | None = None  # containers the profile scanner counted; None: none
    images_captured: int = 0
    images_pending: bool = False  # pictures taken but not read before the deadline
    truck: TruckFact | None = None
    scan: RadiationScan | None = None
    rpm_problem: str | None = None  # why the monitor cannot be trusted right now
    credential: CredentialCheck | None = None
    credential_reader: bool = True
    weight: WeightReading | None = None
    scale_configured: bool = False
    max_gross_kg: float | None = None
    min_gross_kg: float | None = None
    plc_problem: str | None = None
    appointments: tuple[AppointmentFact, ...] = ()
    holds: tuple[HoldFact, ...] = ()
    min_confidence: float = 0.6
    extra_reasons: tuple[Reason, ...] = field(default=())


def decide(evidence: Evidence) -> DecisionResult:
    """Decide PROCEED / TROUBLE / INSPECTION with every reason."""
    inspection: list[Reason] = []
    trouble: list[Reason] = []
    notes: list[Reason] = []

    _radiation(evidence, inspection, trouble, notes)
    _credential(evidence, trouble, notes)
    _containers(evidence, inspection, trouble, notes)
    _truck(evidence, trouble, notes)
    _weight(evidence, trouble, notes)
    if evidence.plc_problem:
        trouble.append(Reason("plc_unavailable", f"gate PLC unavailable: {evidence.plc_problem}"))
    trouble.extend(r for r in evidence.extra_reasons if r.blocking)
    notes.extend(r for r in evidence.extra_reasons if not r.blocking)

    if inspection:
        return DecisionResult(Decision.INSPECTION, tuple(inspection + trouble + notes))
    if trouble:
        return DecisionResult(Decision.TROUBLE, tuple(trouble + notes))
    return DecisionResult(Decision.PROCEED, tuple(notes))


def _radiation(
    evidence: Evidence, inspection: list[Reason], trouble: list[Reason], notes: list[Reason]
) -> None:
    scan = evidence.scan
    if scan is not None and scan.alarm:
        kinds = []
        if scan.monitor_gamma_alarm or scan.gamma_alarm:
            kinds.append("gamma")
        if scan.monitor_neutron_alarm or scan.neutron_alarm:
            kinds.append("neutron")
        inspection.append(
            Reason(
                "radiation_alarm", f"radiation {' and '.join(kinds)} alarm: secondary inspection"
            )
        )
        return
    if evidence.rpm_problem:
        trouble.append(
            Reason("rpm_unavailable", f"radiation portal not trusted: {evidence.rpm_problem}")
        )
        return
    if scan is None:
        trouble.append(Reason("no_radiation_scan", "no radiation scan of this truck"))
    elif not scan.complete:
        trouble.append(Reason("radiation_scan_incomplete", "radiation scan incomplete"))
    elif scan.faults:
        trouble.append(
            Reason("radiation_fault", f"radiation portal fault: {', '.join(scan.faults)}")
        )
    else:
        notes.append(Reason("radiation_clean", "radiation scan clean", blocking=False))


def _credential(evidence: Evidence, trouble: list[Reason], notes: list[Reason]) -> None:
    if not evidence.credential_reader:
        trouble.append(
            Reason("no_credential_reader", "no credential reader at this lane: clerk checks")
        )
        return
    check = evidence.credential
    if check is None:
        trouble.append(Reason("no_credential", "driver presented no credential"))
    elif not check.valid:
        failures = [r for r in check.reasons if r.blocking] or [
            Reason("credential_invalid", "credential invalid")
        ]
        trouble.extend(failures)
    else:
        notes.append(
            Reason(
                "credential_valid",
                f"credential valid (ending {check.credential_last4 or '????'})",
                blocking=False,
            )
        )


def _in_window(appointment: AppointmentFact, at: datetime) -> bool:
    if appointment.window_start is not None and at < appointment.window_start:
        return False
    return not (appointment.window_end is not None and at > appointment.window_end)


def _containers(
    evidence: Evidence, inspection: list[Reason], trouble: list[Reason], notes: list[Reason]
) -> None:
    readable = [c for c in evidence.containers if c.confidence >= evidence.min_confidence]
    weak = [c for c in evidence.containers if c.confidence < evidence.min_confidence]
    if weak or evidence.unreadable_container_seen:
        trouble.append(
            Reason("container_unreadable", "container number could not be read with confidence")
        )
    if evidence.images_pending:
        trouble.append(Reason("ocr_late", "camera images were not read in time"))
    elif evidence.images_captured == 0:
        trouble.append(Reason("no_images", "no camera image of this truck"))

    for container in readable:
        number = container.container_number
        for hold in evidence.holds:
            if hold.container_number != number:
                continue
            text = f"{hold.kind} hold on {number}" + (f": {hold.reason}" if hold.reason else "")
            if hold.kind == "customs":
                inspection.append(Reason("customs_hold", text))
            else:
                trouble.append(Reason("hold", text))
        matches = [
            a
            for a in evidence.appointments
            if a.container_number == number and a.direction == evidence.lane_direction
        ]
        if not matches:
            trouble.append(Reason("no_appointment", f"no appointment or pre-advice for {number}"))
        elif not any(_in_window(a, evidence.at) for a in matches):
            trouble.append(
                Reason(
                    "outside_window", f"appointment {matches[0].reference} is outside its window"
                )
            )
        else:
            notes.append(
                Reason(
                    "appointment_matched",
                    f"{number} matches appointment {matches[0].reference}",
                    blocking=False,
                )
            )

    count = evidence.container_count
    if count is not None and evidence.containers and not evidence.images_pending:
        if len(evidence.containers) < count:
            trouble.append(
                Reason("container_unreadable",
                       f"{count} containers on the chassis, {len(evidence.containers)} read")
            )
        elif len(evidence.containers) > count:
            trouble.append(
                Reason("container_count_mismatch",
                       f"{len(evidence.containers)} numbers read, the scanner counted {count}")
            )
    if evidence.containers and evidence.container_sensed is False:
        trouble.append(
            Reason("container_not_sensed",
                   "a number was read but the presence sensor saw no container on this truck")
        )
    if evidence.containers or evidence.unreadable_container_seen or evidence.images_pending:
        return
    if evidence.container_sensed:
        trouble.append(
            Reason("container_unreadable", "a container is on the truck but its number "
                   "could not be read")
        )
        return
    if evidence.container_sensed is None:
        trouble.append(
            Reason("container_unknown", "no number read and no presence sensor to tell an "
                   "empty chassis from an unreadable container")
        )
        return
    # Bobtail or empty chassis: the truck must be expected to collect a container.
    truck = evidence.truck
    pickups = [
        a
        for a in evidence.appointments
        if a.direction != evidence.lane_direction
        and truck is not None
        and (
            a.truck_epc == truck.epc
            if a.truck_epc
            else bool(a.company_code) and a.company_code == truck.company_code
        )
    ]
    if evidence.images_captured and not pickups:
        trouble.append(
            Reason("no_container_no_pickup", "no container on the truck and no pick-up appointment")
        )
    elif pickups:
        notes.append(
            Reason(
                "pickup_matched",
                f"empty chassis or bobtail for pick-up {pickups[0].reference}",
                blocking=False,
            )
        )


def _truck(evidence: Evidence, trouble: list[Reason], notes: list[Reason]) -> None:
    truck = evidence.truck
    if truck is None:
        trouble.append(Reason("no_truck_tag", "truck RFID tag not read"))
        return
    if not truck.known:
        trouble.append(Reason("unknown_truck", f"truck tag {truck.epc} is not registered"))
        return
    companies = {
        a.company_code
        for a in evidence.appointments
        if a.company_code
        and any(a.container_number == c.container_number for c in evidence.containers)
    }
    if companies and truck.company_code not in companies:
        trouble.append(
            Reason(
                "company_mismatch",
                f"truck belongs to {truck.company_code}, appointment is for "
                f"{', '.join(sorted(companies))}",
            )
        )
    else:
        notes.append(
            Reason(
                "truck_known",
                f"truck {truck.plate or truck.epc} of {truck.company_code}",
                blocking=False,
            )
        )


def _weight(evidence: Evidence, trouble: list[Reason], notes: list[Reason]) -> None:
    if not evidence.scale_configured:
        return
    weight = evidence.weight
    if weight is None or not weight.stable:
        trouble.append(Reason("no_weight", "no stable weight from the lane scale"))
        return
    if not math.isfinite(weight.gross_kg):
        trouble.append(Reason("weight_implausible", "the scale reported no number"))
        return
    if evidence.max_gross_kg is not None and weight.gross_kg > evidence.max_gross_kg:
        trouble.append(
            Reason(
                "overweight",
                f"gross weight {weight.gross_kg:.0f} kg above the lane limit "
                f"{evidence.max_gross_kg:.0f} kg",
            )
        )
    elif evidence.min_gross_kg is not None and weight.gross_kg < evidence.min_gross_kg:
        trouble.append(
            Reason("weight_implausible", f"gross weight {weight.gross_kg:.0f} kg is implausible")
        )
    else:
        notes.append(Reason("weight_ok", f"gross weight {weight.gross_kg:.0f} kg", blocking=False))
