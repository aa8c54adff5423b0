"""Payloads the gate publishes to the TOS, and the calls that queue them in the outbox.

Each builder returns the body of one event; `gated.outbox.add_event` wraps it in the envelope
(schema version, event id, site, lane, time). The shapes are documented in `docs/events.md`
and checked against the JSON Schema files in `docs/schemas/` by the tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from gated import models
from gated.domain import DeviceHealth, Reason, utcnow
from gated.outbox import add_event

TransactionKind = Literal["new", "update", "end"]

TRANSACTIONS_TOPIC = "transactions"
MOVES_TOPIC = "moves"


def lane_state_topic(lane: str) -> str:
    return f"lanes/{lane}/state"


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _reasons(reasons: Iterable[Any]) -> list[dict[str, Any]]:
    """Reasons as stored (dicts) or as domain objects, in one shape."""
    result = []
    for reason in reasons or ():
        if isinstance(reason, Reason):
            result.append({"code": reason.code, "text": reason.text, "blocking": reason.blocking})
        elif isinstance(reason, dict):
            result.append(
                {
                    "code": str(reason.get("code", "")),
                    "text": str(reason.get("text", "")),
                    "blocking": bool(reason.get("blocking", True)),
                }
            )
        else:
            result.append({"code": str(reason), "text": str(reason), "blocking": True})
    return result


def _radiation(scan: models.RadiationScanRow | None) -> dict[str, Any] | None:
    if scan is None:
        return None
    return {
        "occupancy_id": scan.occupancy_id,
        "complete": scan.complete,
        "gamma_alarm": scan.gamma_alarm or scan.monitor_gamma_alarm,
        "neutron_alarm": scan.neutron_alarm or scan.monitor_neutron_alarm,
        "monitor_gamma_alarm": scan.monitor_gamma_alarm,
        "monitor_neutron_alarm": scan.monitor_neutron_alarm,
        "peak_gamma_sigma": list(scan.peak_gamma_sigma or []),
        "peak_neutron_sigma": list(scan.peak_neutron_sigma or []),
        "faults": list(scan.faults or []),
        "started_at": _time(scan.started_at),
        "ended_at": _time(scan.ended_at),
    }


def _credential(check: models.CredentialCheckRow | None) -> dict[str, Any] | None:
    # the keyed FASC-N hash stays in the gate; the TOS gets the verdict and last four digits
    if check is None:
        return None
    return {
        "valid": check.valid,
        "reasons": _reasons(check.reasons),
        "last4": check.credential_last4,
        "biometric_status": check.biometric_status,
        "checked_at": _time(check.checked_at),
    }


def transaction_event(
    tx: models.GateTransaction,
    kind: TransactionKind,
    action: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The TOS view of a gate transaction: reads, images, scan, credential, decision, reasons.

    `action` describes a clerk's action that caused an update (kind, by, role, reason).
    """
    scan = tx.scans[-1] if tx.scans else None
    check = tx.credential_checks[-1] if tx.credential_checks else None
    body: dict[str, Any] = {
        "type": "transaction",
        "kind": kind,
        "transaction": {
            "uuid": tx.uuid,
            "direction": tx.direction,
            "state": str(tx.state),
            "decision": str(tx.decision) if tx.decision is not None else None,
            "reasons": _reasons(tx.reasons),
            "arrived_at": _time(tx.arrived_at),
            "decided_at": _time(tx.decided_at),
            "closed_at": _time(tx.closed_at),
            "gate_pass_number": tx.gate_pass_number,
            "resolved_by": tx.resolved_by,
            "truck": {
                "epc": tx.truck_epc,
                "company_code": tx.company_code,
                "chassis_number": tx.chassis_number,
                "gross_weight_kg": tx.gross_weight_kg,
            },
            "containers": [
                {
                    "position": c.position,
                    "container_number": c.container_number,
                    "size_type": c.size_type,
                    "confidence": round(float(c.confidence or 0.0), 3),
                    "source": c.source,
                    "seal": c.seal,
                    "images": [str(image) for image in c.images or []],
                }
                for c in tx.containers
            ],
            "reads": [
                {
                    "camera": r.camera,
                    "image": r.image_path,
                    "container_number": r.container_number,
                    "size_type": r.size_type,
                    "confidence": round(float(r.confidence or 0.0), 3),
                    "error": r.error,
                }
                for r in tx.reads
            ],
            "radiation": _radiation(scan),
            "credential": _credential(check),
        },
    }
    if action is not None:
        body["action"] = {
            "kind": str(action.get("kind", "")),
            "by": action.get("by"),
            "role": action.get("role"),
            "reason": action.get("reason"),
        }
    return body


def move_event(
    move: models.Move, transaction: models.GateTransaction | None = None
) -> dict[str, Any]:
    """A resolved move (gate-in, gate-out, yard move); the TOS acknowledges it by event id."""
    details = move.details or {}
    return {
        "type": "move",
        "move": {
            "kind": move.kind,
            "container_number": move.container_number,
            "size_type": move.size_type,
            "from_location": move.from_location,
            "to_location": move.to_location,
            "truck": move.truck,
            "chassis_number": move.chassis_number,
            "machine": move.machine,
            "transaction_uuid": transaction.uuid if transaction is not None else None,
            "gate_pass_number": (
                transaction.gate_pass_number
                if transaction is not None
                else details.get("gate_pass_number")
            ),
            "occurred_at": _time(move.occurred_at),
        },
    }


def lane_state_event(
    state: str,
    transaction_uuid: str | None = None,
    devices: Iterable[DeviceHealth] = (),
    detail: str = "",
) -> dict[str, Any]:
    """A lane's current state for the TOS and dashboards (published retained)."""
    return {
        "type": "lane_state",
        "state": state,
        "transaction_uuid": transaction_uuid,
        "detail": detail,
        "devices": [
            {
                "device": device.device,
                "up": device.up,
                "detail": device.detail,
                "since": _time(device.since),
            }
            for device in devices
        ],
    }


# --- queueing in the caller's transaction ----------------------------------------------------


def queue_transaction_event(
    session: Session,
    site: str,
    tx: models.GateTransaction,
    kind: TransactionKind,
    action: dict[str, Any] | None = None,
) -> str:
    """Queue a transaction event in the caller's transaction; returns the event id."""
    session.flush()  # the transaction's uuid and children must exist
    return add_event(
        session,
        site=site,
        topic=TRANSACTIONS_TOPIC,
        lane=tx.lane,
        body=transaction_event(tx, kind, action),
    )


def queue_move(
    session: Session,
    site: str,
    move: models.Move,
    transaction: models.GateTransaction | None = None,
) -> str:
    """Add a move and its event in the caller's transaction; the event id is the move's."""
    if not move.event_id:
        move.event_id = models.new_uuid()
    if move.occurred_at is None:
        move.occurred_at = utcnow()
    session.add(move)
    return add_event(
        session,
        site=site,
        topic=MOVES_TOPIC,
        lane=move.lane,
        body=move_event(move, transaction),
        event_id=move.event_id,
        time=move.occurred_at,
    )


def queue_lane_state(
    session: Session,
    site: str,
    lane: str,
    state: str,
    transaction_uuid: str | None = None,
    devices: Iterable[DeviceHealth] = (),
    detail: str = "",
) -> str:
    """Queue the lane's state (retained, so a TOS that connects later sees it at once)."""
    return add_event(
        session,
        site=site,
        topic=lane_state_topic(lane),
        lane=lane,
        body=lane_state_event(state, transaction_uuid, devices, detail),
        retain=True,
    )
