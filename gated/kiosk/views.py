"""What the kiosk pages show, read from the database: plain dicts for the templates and JSON."""

from __future__ import annotations

import math
import os
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, selectinload

from gated.config import SiteConfig
from gated.domain import TransactionState, utcnow
from gated.models import (
    Appointment,
    AuditLog,
    ContainerReadRow,
    GateTransaction,
    Hold,
    Move,
    TransactionContainer,
    Truck,
)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def age_text(moment: datetime | None, now: datetime | None = None) -> str:
    """'45 s', '3 min', '2 h 05 min' since a moment."""
    if moment is None:
        return ""
    seconds = max(0, int(((now or utcnow()) - (aware(moment) or utcnow())).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def reason_texts(reasons: list[Any] | None) -> list[str]:
    texts = []
    for reason in reasons or []:
        if isinstance(reason, dict):
            texts.append(str(reason.get("text") or reason.get("code") or reason))
        else:
            texts.append(str(reason))
    return texts


# --- lane board and trouble queue --------------------------------------------------------------


def _field(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else getattr(item, key, None)


def normalise_lane(raw: dict[str, Any]) -> dict[str, Any]:
    """One lane of the runner's board in the shape the page draws; tolerant of missing keys."""
    devices = raw.get("devices") or []
    if isinstance(devices, dict):
        devices = [
            {"device": name, **(value if isinstance(value, dict) else {"up": bool(value)})}
            for name, value in devices.items()
        ]
    # dicts from JSON, or `gated.domain.DeviceHealth` objects straight from the health board
    device_rows = [
        {
            "device": str(_field(d, "device") or _field(d, "name") or "?"),
            "up": bool(_field(d, "up")),
            "detail": str(_field(d, "detail") or ""),
        }
        for d in devices
    ]
    truck = raw.get("truck")
    if isinstance(truck, dict):
        truck = truck.get("plate") or truck.get("epc")
    state = str(raw.get("state") or "unknown").lower()
    return {
        "lane": str(raw.get("lane") or raw.get("id") or "?"),
        "direction": str(raw.get("direction") or ""),
        "state": state,
        "transaction_id": raw.get("transaction_id"),
        "truck": str(truck) if truck else "",
        "devices": device_rows,
        "devices_down": sum(1 for d in device_rows if not d["up"]),
        "containers": [str(c) if c else "not read" for c in raw.get("containers") or []],
        "since": str(raw.get("since") or ""),
    }


def trouble_queue(session: Session, limit: int = 100) -> list[dict[str, Any]]:
    """Transactions waiting for a clerk (trouble) or held (inspection), oldest first."""
    waiting = (TransactionState.TROUBLE.value, TransactionState.INSPECTION.value)
    rows = session.scalars(
        select(GateTransaction)
        .where(GateTransaction.state.in_(waiting))
        .options(selectinload(GateTransaction.containers))
        .order_by(GateTransaction.arrived_at, GateTransaction.id)
        .limit(limit)
    ).all()
    now = utcnow()
    return [
        {
            "id": tx.id,
            "lane": tx.lane,
            "direction": tx.direction,
            "state": tx.state,
            "arrived_at": (aware(tx.arrived_at) or now).isoformat(),
            "waiting": age_text(tx.decided_at or tx.arrived_at, now),
            "truck": tx.truck_epc or "",
            "containers": [c.container_number or "not read" for c in tx.containers] or ["none"],
            "reasons": reason_texts(tx.reasons),
        }
        for tx in rows
    ]


def waiting_moves(session: Session, limit: int = 200) -> list[dict[str, Any]]:
    """Moves the TOS has not acknowledged yet, oldest first."""
    rows = session.scalars(
        select(Move).where(Move.acked_at.is_(None)).order_by(Move.occurred_at).limit(limit)
    ).all()
    now = utcnow()
    return [
        {
            "id": move.id,
            "event_id": move.event_id,
            "kind": move.kind,
            "container_number": move.container_number,
            "lane": move.lane or move.machine or "",
            "transaction_id": move.transaction_id,
            "occurred_at": aware(move.occurred_at),
            "age": age_text(move.occurred_at, now),
            "send_count": move.send_count,
            "last_sent": age_text(move.last_sent_at, now) if move.last_sent_at else "never",
        }
        for move in rows
    ]


def count_waiting_moves(session: Session) -> int:
    return int(session.scalar(select(func.count(Move.id)).where(Move.acked_at.is_(None))) or 0)


# --- one transaction -------------------------------------------------------------------------


def normalise_regions(regions: list[Any] | None) -> list[dict[str, Any]]:
    """Code regions as {x, y, w, h, text}: stored as [x, y, w, h] lists or dicts with a bbox."""
    found = []
    for region in regions or []:
        box: Any = None
        text = ""
        if isinstance(region, (list, tuple)) and len(region) == 4:
            box = region
        elif isinstance(region, dict):
            box = region.get("bbox") or region.get("box")
            if box is None and all(k in region for k in ("x", "y", "w", "h")):
                box = [region["x"], region["y"], region["w"], region["h"]]
            text = str(region.get("text") or region.get("label") or "")
        try:
            x, y, w, h = (float(v) for v in box)
        except (TypeError, ValueError):
            continue
        if w > 0 and h > 0:
            found.append({"x": x, "y": y, "w": w, "h": h, "text": text})
    return found


def radiation_chart(
    profile: list[Any] | None, width: int = 320, height: int = 60
) -> dict[str, Any]:
    """SVG polylines of total gamma and total neutron counts over the occupancy, each scaled
    from zero to a little above its own peak."""
    gamma: list[float] = []
    neutron: list[float] = []
    g: Any
    n: Any
    for sample in profile or []:
        if isinstance(sample, dict):
            g = sample.get("g", sample.get("gamma", []))
            n = sample.get("n", sample.get("neutron", []))
        elif isinstance(sample, (list, tuple)) and len(sample) == 3:
            _, g, n = sample
        else:
            continue
        try:
            total_g, total_n = float(sum(g)), float(sum(n))
        except (TypeError, ValueError):
            continue
        if math.isfinite(total_g) and math.isfinite(total_n):
            gamma.append(total_g)
            neutron.append(total_n)

    def series(values: list[float]) -> dict[str, Any]:
        if len(values) < 2:
            return {"points": "", "peak": None}
        top = max(values) * 1.15 or 1.0
        step = width / (len(values) - 1)
        points = " ".join(
            f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}"
            for i, v in enumerate(values)
        )
        return {"points": points, "peak": max(values)}

    return {
        "width": width,
        "height": height,
        "samples": len(gamma),
        "gamma": series(gamma),
        "neutron": series(neutron),
    }


def _appointment(session: Session, tx: GateTransaction) -> Appointment | None:
    reference = (tx.details or {}).get("appointment")
    if reference:
        found = session.scalars(
            select(Appointment).where(Appointment.reference == str(reference))
        ).first()
        if found:
            return found
    numbers = [c.container_number for c in tx.containers if c.container_number]
    clauses: list[Any] = []
    if numbers:
        clauses.append(and_(Appointment.container_number.in_(numbers),
                            Appointment.direction == tx.direction))
    if tx.truck_epc:
        # a pick-up: the truck comes in empty for a container that goes out
        clauses.append(Appointment.truck_epc == tx.truck_epc)
    if not clauses:
        return None
    return session.scalars(
        select(Appointment).where(or_(*clauses)).order_by(Appointment.updated_at.desc())
    ).first()


def transaction_view(
    session: Session, tx_id: int, config: SiteConfig | None = None
) -> dict[str, Any] | None:
    """Everything the transaction page shows. Credential: result and last 4 digits only."""
    tx = session.get(GateTransaction, tx_id)
    if tx is None:
        return None
    truck = session.get(Truck, tx.truck_id) if tx.truck_id else None
    if truck is None and tx.truck_epc:
        truck = session.scalars(select(Truck).where(Truck.epc == tx.truck_epc)).first()
    appointment = _appointment(session, tx)
    numbers = [c.container_number for c in tx.containers if c.container_number]
    holds = (
        session.scalars(
            select(Hold).where(Hold.container_number.in_(numbers), Hold.released_at.is_(None))
        ).all()
        if numbers
        else []
    )
    scan = tx.scans[-1] if tx.scans else None
    check = tx.credential_checks[-1] if tx.credential_checks else None
    reads = sorted(tx.reads, key=lambda r: (r.captured_at or utcnow(), r.id))
    audit = session.scalars(
        select(AuditLog).where(AuditLog.transaction_id == tx.id).order_by(AuditLog.id)
    ).all()
    moves = session.scalars(
        select(Move).where(Move.transaction_id == tx.id).order_by(Move.id)
    ).all()
    slots: dict[int, TransactionContainer | None] = {c.position: c for c in tx.containers}
    if not slots:  # nothing fused: still offer the front slot to type a number into
        slots = {0: None}
    return {
        "id": tx.id,
        "uuid": tx.uuid,
        "lane": tx.lane,
        "direction": tx.direction,
        "state": tx.state,
        "decision": tx.decision,
        "reasons": reason_texts(tx.reasons),
        "arrived_at": aware(tx.arrived_at),
        "decided_at": aware(tx.decided_at),
        "closed_at": aware(tx.closed_at),
        "waiting": age_text(tx.decided_at or tx.arrived_at),
        "gate_pass_number": tx.gate_pass_number,
        "resolved_by": tx.resolved_by,
        "resolution": (tx.details or {}).get("resolution"),
        "chassis_number": tx.chassis_number,
        "gross_weight_kg": tx.gross_weight_kg,
        "truck": {
            "epc": tx.truck_epc,
            "plate": truck.plate if truck else None,
            "company": (truck.company.name if truck and truck.company else None)
            or tx.company_code,
            "known": truck is not None,
        },
        "containers": [
            {
                "position": position,
                "slot": "front" if position == 0 else "rear",
                "container_number": slot.container_number if slot else None,
                "size_type": slot.size_type if slot else None,
                "confidence": slot.confidence if slot else 0.0,
                "source": slot.source if slot else "",
                "seal": slot.seal if slot else None,
            }
            for position, slot in sorted(slots.items())
        ],
        "reads": [
            {
                "id": read.id,
                "camera": read.camera or "?",
                "container_number": read.container_number,
                "size_type": read.size_type,
                "confidence": read.confidence,
                "layout": read.layout,
                "error": read.error,
                "elapsed_ms": read.elapsed_ms,
                "regions": normalise_regions(read.regions),
                "size": _read_size(session, config, read),
            }
            for read in reads
        ],
        "scan": None
        if scan is None
        else {
            "complete": scan.complete,
            "gamma_alarm": scan.gamma_alarm or scan.monitor_gamma_alarm,
            "neutron_alarm": scan.neutron_alarm or scan.monitor_neutron_alarm,
            "faults": scan.faults,
            "peak_gamma_sigma": max(scan.peak_gamma_sigma or [0.0]),
            "peak_neutron_sigma": max(scan.peak_neutron_sigma or [0.0]),
            "chart": radiation_chart(scan.profile),
        },
        "credential": None
        if check is None
        else {
            "valid": check.valid,
            "last4": check.credential_last4,
            "reasons": reason_texts(check.reasons),
            "biometric": check.biometric_status,
        },
        "appointment": None
        if appointment is None
        else {
            "reference": appointment.reference,
            "container_number": appointment.container_number,
            "company": appointment.company_code,
            "window_start": aware(appointment.window_start),
            "window_end": aware(appointment.window_end),
            "yard_position": appointment.yard_position,
            "status": appointment.status,
        },
        "yard_positions": [
            {"container_number": number, "yard_position": position}
            for number, position in ((tx.details or {}).get("yard_positions") or {}).items()
        ],
        "holds": [{"kind": h.kind, "reason": h.reason, "container": h.container_number}
                  for h in holds],
        "moves": [
            {
                "kind": m.kind,
                "container_number": m.container_number,
                "to_location": m.to_location,
                "acked_at": aware(m.acked_at),
                "send_count": m.send_count,
            }
            for m in moves
        ],
        "audit": [
            {
                "at": aware(a.at),
                "username": a.username,
                "role": a.role,
                "action": a.action,
                "reason": a.reason,
                "before": a.before,
                "after": a.after,
            }
            for a in audit
        ],
    }


def _read_size(
    session: Session, config: SiteConfig | None, read: ContainerReadRow
) -> tuple[int, int] | None:
    if config is None:
        return None
    path = image_file(session, config, read.transaction_id, read.id)
    return image_size(path) if path else None


def image_file(session: Session, config: SiteConfig, tx_id: int, read_id: int) -> Path | None:
    """The image file of one read, only when it lies under the image directory."""
    read = session.get(ContainerReadRow, read_id)
    if read is None or read.transaction_id != tx_id:
        return None
    # realpath: a symlink in the image directory must not lead out of it (to the secret file)
    try:
        root = os.path.realpath(config.images.directory)
        path = os.path.realpath(os.path.join(root, read.image_path))
    except ValueError:  # a NUL byte in the stored path
        return None
    if "\x00" in path or os.path.commonpath([root, path]) != root:
        return None
    return Path(path)


# --- history ------------------------------------------------------------------------------------


def parse_day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def history(
    session: Session,
    container: str = "",
    truck: str = "",
    day_from: date | None = None,
    day_to: date | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Transactions by container number (prefix), truck (tag or plate) and UTC date range."""
    query = select(GateTransaction).options(selectinload(GateTransaction.containers))
    container = "".join(container.split()).upper()
    if container:
        query = query.where(
            GateTransaction.id.in_(
                select(TransactionContainer.transaction_id).where(
                    TransactionContainer.container_number.like(f"{container}%")
                )
            )
        )
    truck = truck.strip()
    if truck:
        plates = select(Truck.epc).where(Truck.plate.ilike(f"%{truck}%"))
        query = query.where(
            or_(
                GateTransaction.truck_epc.ilike(f"%{truck}%"),
                GateTransaction.truck_epc.in_(plates),
            )
        )
    if day_from:
        query = query.where(GateTransaction.arrived_at >= datetime.combine(day_from, time(), UTC))
    if day_to:
        end = datetime.combine(day_to, time(), UTC) + timedelta(days=1)
        query = query.where(GateTransaction.arrived_at < end)
    rows = session.scalars(query.order_by(GateTransaction.arrived_at.desc()).limit(limit)).all()
    return [
        {
            "id": tx.id,
            "lane": tx.lane,
            "direction": tx.direction,
            "state": tx.state,
            "decision": tx.decision,
            "arrived_at": aware(tx.arrived_at),
            "truck": tx.truck_epc or "",
            "containers": [c.container_number or "unread" for c in tx.containers],
            "gate_pass_number": tx.gate_pass_number or "",
            "resolved_by": tx.resolved_by or "",
        }
        for tx in rows
    ]


def recent_audit(session: Session, limit: int = 100) -> list[AuditLog]:
    return list(session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)))


def image_size(path: Path) -> tuple[int, int] | None:
    """Width and height of a JPEG or PNG from its header, without decoding the pixels."""
    try:
        with path.open("rb") as handle:
            head = handle.read(24)
            if head[:8] == b"\x89PNG\r\n\x1a\n":
                return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            if head[:2] != b"\xff\xd8":
                return None
            handle.seek(2)
            while True:
                marker = handle.read(4)
                if len(marker) < 4 or marker[0] != 0xFF:
                    return None
                length = int.from_bytes(marker[2:4], "big")
                if marker[1] in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB):
                    frame = handle.read(5)
                    return int.from_bytes(frame[3:5], "big"), int.from_bytes(frame[1:3], "big")
                handle.seek(length - 2, 1)
    except (OSError, ValueError):
        return None
