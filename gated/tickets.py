"""The texts printed at the lane: gate pass / equipment interchange receipt, instructions."""

from __future__ import annotations

from gated import models


def _pair(label: str, value: object, width: int) -> str:
    text = "-" if value in (None, "") else str(value)
    room = max(1, width - len(label) - 1)
    return f"{label} {text[-room:]:>{room}}"


def gate_pass_lines(tx: models.GateTransaction, width: int = 42) -> list[str]:
    """Gate pass / EIR: what was let through, by whom, with what."""
    lines = [
        _pair("Gate pass", tx.gate_pass_number, width),
        _pair("Lane", f"{tx.lane} ({tx.direction})", width),
        _pair("Time", tx.decided_at.strftime("%Y-%m-%d %H:%M") if tx.decided_at else None, width),
        _pair("Truck", tx.truck_epc, width),
        _pair("Company", tx.company_code, width),
        _pair("Chassis", tx.chassis_number, width),
    ]
    for container in tx.containers:
        lines.append("-" * width)
        lines.append(_pair("Container", container.container_number, width))
        lines.append(_pair("Size/type", container.size_type, width))
        lines.append(_pair("Seal", container.seal, width))
    if tx.gross_weight_kg is not None:
        lines.append(_pair("Gross weight kg", f"{tx.gross_weight_kg:.0f}", width))
    return lines


def instruction_lines(tx: models.GateTransaction, width: int = 42) -> list[str]:
    """Where the driver goes next (yard positions come from the TOS appointment)."""
    lines = [_pair("Gate pass", tx.gate_pass_number, width)]
    positions = tx.details.get("yard_positions", {}) if tx.details else {}
    for container in tx.containers:
        where = positions.get(container.container_number) or "see yard office"
        lines.append(_pair(container.container_number or "container", where, width))
    if not tx.containers:
        lines.append("Proceed to the pick-up area.")
    lines.append("Drive slowly. Follow the signs.")
    return lines


def inspection_lines(tx: models.GateTransaction, width: int = 42) -> list[str]:
    return [
        _pair("Transaction", tx.uuid[:8], width),
        "Do not enter the terminal.",
        "Follow the signs to SECONDARY INSPECTION.",
        "Stay in your truck until told otherwise.",
    ]
