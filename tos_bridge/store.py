"""Writing validated TOS commands to the gate's tables; each call runs in the caller's session.

A command that validates but cannot be applied (an ack for a move the gate never sent, a
yard position for a container without an open appointment) raises `CommandRejected`; the
caller rolls back, so a refused command changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gated.models import Appointment, Hold, Move, Truck, TruckingCompany
from tos_bridge.commands import (
    AppointmentCommand,
    Command,
    CommandRejected,
    HoldCommand,
    TruckCommand,
    YardPositionCommand,
)


def apply_command(session: Session, command: Command, now: datetime) -> None:
    """Apply one non-ack command; raise CommandRejected when it cannot be applied."""
    if isinstance(command, AppointmentCommand):
        _appointment(session, command, now)
    elif isinstance(command, HoldCommand):
        _hold(session, command, now)
    elif isinstance(command, YardPositionCommand):
        _yard_position(session, command, now)
    elif isinstance(command, TruckCommand):
        _truck(session, command)
    else:
        raise TypeError(f"not a table command: {type(command).__name__}")


def _appointment(session: Session, command: AppointmentCommand, now: datetime) -> None:
    row = session.scalars(
        select(Appointment).where(Appointment.reference == command.reference)
    ).one_or_none()
    if command.action == "cancel":
        if row is None:
            raise CommandRejected(
                "unknown_reference", f"no appointment {command.reference}", command.command_id
            )
        row.status = "cancelled"
        row.updated_at = now
        return
    if row is None:
        row = Appointment(reference=command.reference)
        session.add(row)
    row.direction = str(command.direction)
    row.container_number = command.container_number
    row.company_code = command.company_code
    row.truck_epc = command.truck_epc.upper() if command.truck_epc else None
    row.window_start = command.window_start
    row.window_end = command.window_end
    row.yard_position = command.yard_position
    row.status = "open"
    row.updated_at = now


def _hold(session: Session, command: HoldCommand, now: datetime) -> None:
    active = list(
        session.scalars(
            select(Hold)
            .where(Hold.container_number == command.container_number)
            .where(Hold.kind == command.kind)
            .where(Hold.released_at.is_(None))
        )
    )
    if command.action == "place":
        if active:  # the same hold again (a TOS retry): keep the first, update its reason
            if command.reason:
                active[0].reason = command.reason
            return
        session.add(
            Hold(
                container_number=command.container_number,
                kind=command.kind,
                reason=command.reason,
                placed_at=now,
            )
        )
        return
    for hold in active:  # releasing a hold that is not there is a harmless repeat
        hold.released_at = now


def _yard_position(session: Session, command: YardPositionCommand, now: datetime) -> None:
    query = (
        select(Appointment)
        .where(Appointment.container_number == command.container_number)
        .where(Appointment.status == "open")
    )
    if command.reference is not None:
        query = query.where(Appointment.reference == command.reference)
    rows = list(session.scalars(query))
    if not rows:
        raise CommandRejected(
            "no_appointment",
            f"no open appointment for {command.container_number}"
            + (f" with reference {command.reference}" if command.reference else ""),
            command.command_id,
        )
    for row in rows:
        row.yard_position = command.yard_position
        row.updated_at = now


def _truck(session: Session, command: TruckCommand) -> None:
    epc = command.epc.upper()
    truck = session.scalars(select(Truck).where(Truck.epc == epc)).one_or_none()
    if command.action == "delete":
        if truck is not None:
            session.delete(truck)
        return
    company = None
    if command.company_code is not None:
        company = session.scalars(
            select(TruckingCompany).where(TruckingCompany.code == command.company_code)
        ).one_or_none()
        if company is None:
            company = TruckingCompany(
                code=command.company_code, name=command.company_name or command.company_code
            )
            session.add(company)
        elif command.company_name:
            company.name = command.company_name
    if truck is None:
        truck = Truck(epc=epc)
        session.add(truck)
    truck.plate = command.plate
    truck.company = company


def apply_acks(session: Session, event_ids: list[str], now: datetime) -> tuple[int, list[str]]:
    """Mark moves acknowledged; returns (newly acknowledged, ids the gate does not know)."""
    known: set[str] = set()
    for start in range(0, len(event_ids), 500):
        chunk = event_ids[start : start + 500]
        known.update(session.scalars(select(Move.event_id).where(Move.event_id.in_(chunk))))
    newly = 0
    known_list = sorted(known)
    for start in range(0, len(known_list), 500):
        chunk = known_list[start : start + 500]
        result = session.execute(
            update(Move)
            .where(Move.event_id.in_(chunk))
            .where(Move.acked_at.is_(None))
            .values(acked_at=now)
            .execution_options(synchronize_session=False)
        )
        newly += int(getattr(result, "rowcount", 0) or 0)
    unknown = [event_id for event_id in event_ids if event_id not in known]
    return newly, unknown
