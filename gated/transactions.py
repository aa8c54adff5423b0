"""Gate transactions in the database: each state change and its TOS event in one commit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gated import models
from gated.credentials import record_check
from gated.decision import AppointmentFact, HoldFact, TruckFact
from gated.domain import (
    ContainerRead,
    CredentialCheck,
    Decision,
    DecisionResult,
    DeviceHealth,
    FusedContainer,
    MoveKind,
    RadiationScan,
    Reason,
    TagRead,
    TransactionState,
    WeightReading,
    utcnow,
)
from gated.events import TransactionKind, queue_lane_state, queue_move, queue_transaction_event

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

OPEN_STATES = (
    TransactionState.ARRIVING,
    TransactionState.IDENTIFYING,
    TransactionState.DECIDING,
)
WAITING_STATES = (TransactionState.TROUBLE, TransactionState.INSPECTION)
MOVING_STATES = (TransactionState.PROCEED, TransactionState.LEAVING)


def reasons_json(reasons: Sequence[Reason]) -> list[dict[str, Any]]:
    return [{"code": r.code, "text": r.text, "blocking": r.blocking} for r in reasons]


class TransactionStore:
    """Writes one lane's transactions; every method is one database transaction."""

    def __init__(self, sessions: sessionmaker[Session], site: str, gate: str) -> None:
        self._sessions = sessions
        self._site = site
        self._gate = gate

    def _event(self, session: Session, tx: models.GateTransaction, event: TransactionKind) -> None:
        queue_transaction_event(session, self._site, tx, event)

    def open(self, lane: str, direction: str, at: datetime) -> tuple[int, str]:
        with self._sessions.begin() as session:
            tx = models.GateTransaction(
                lane=lane,
                direction=direction,
                state=TransactionState.IDENTIFYING,
                arrived_at=at,
                reasons=[],
                details={},
            )
            session.add(tx)
            self._event(session, tx, "new")
            return tx.id, tx.uuid

    def add_reads(
        self,
        tx_id: int,
        reads: Sequence[ContainerRead],
        fused: Sequence[FusedContainer],
        replace: bool = False,
    ) -> None:
        """Store a visit's image reads and the fused numbers; `replace` drops earlier reads."""
        with self._sessions.begin() as session:
            tx = session.get_one(models.GateTransaction, tx_id)
            if replace:
                tx.reads.clear()
                session.flush()
            for read in reads:
                session.add(
                    models.ContainerReadRow(
                        transaction_id=tx_id,
                        camera=read.camera,
                        image_path=read.image,
                        container_number=read.container_number,
                        size_type=read.size_type,
                        confidence=read.confidence,
                        layout=read.layout,
                        regions=[list(read.region)] if read.region else [],
                        error=read.error,
                        elapsed_ms=read.elapsed_ms,
                    )
                )
            tx.containers.clear()
            session.flush()
            for position, container in enumerate(fused):
                tx.containers.append(
                    models.TransactionContainer(
                        position=position,
                        container_number=container.container_number,
                        size_type=container.size_type,
                        confidence=container.confidence,
                        source="ocr",
                        images=list(container.images),
                    )
                )

    def add_tag(self, tx_id: int | None, lane: str, tag: TagRead, known: bool) -> None:
        with self._sessions.begin() as session:
            session.add(
                models.TagReadRow(
                    transaction_id=tx_id,
                    lane=lane,
                    reader=tag.reader,
                    antenna=tag.antenna,
                    epc=tag.epc,
                    rssi=tag.rssi,
                    seen_at=tag.seen_at,
                    known=known,
                )
            )
            if tx_id is not None:
                tx = session.get_one(models.GateTransaction, tx_id)
                if tx.truck_epc is None:
                    tx.truck_epc = tag.epc

    def add_scan(self, tx_id: int | None, scan: RadiationScan) -> None:
        with self._sessions.begin() as session:
            session.add(
                models.RadiationScanRow(
                    transaction_id=tx_id,
                    lane=scan.lane,
                    occupancy_id=scan.occupancy_id,
                    started_at=scan.started_at,
                    ended_at=scan.ended_at,
                    complete=scan.complete,
                    monitor_gamma_alarm=scan.monitor_gamma_alarm,
                    monitor_neutron_alarm=scan.monitor_neutron_alarm,
                    gamma_alarm=scan.gamma_alarm,
                    neutron_alarm=scan.neutron_alarm,
                    peak_gamma_sigma=list(scan.peak_gamma_sigma),
                    peak_neutron_sigma=list(scan.peak_neutron_sigma),
                    faults=list(scan.faults),
                    profile=[
                        {"t": s.at.isoformat(), "g": list(s.gamma), "n": list(s.neutron)}
                        for s in scan.profile
                    ],
                )
            )

    def add_credential(self, tx_id: int | None, lane: str, check: CredentialCheck) -> None:
        """Store a credential check with its `lanes/<lane>/credential` event."""
        with self._sessions.begin() as session:
            record_check(session, check, site=self._site, lane=lane, transaction_id=tx_id)

    def set_weight(self, tx_id: int, weight: WeightReading) -> None:
        with self._sessions.begin() as session:
            tx = session.get_one(models.GateTransaction, tx_id)
            tx.gross_weight_kg = weight.gross_kg

    def record_unmatched(self, lane: str, kind: str, payload: dict[str, Any]) -> None:
        with self._sessions.begin() as session:
            session.add(models.UnmatchedEvent(lane=lane, kind=kind, payload=payload))

    # --- what the TOS told us -----------------------------------------------------------------

    def truck(self, epc: str | None) -> TruckFact | None:
        """The registry's word on one truck tag (None without a tag): a look-up per tag read,
        so it reads the truck alone, not the appointments and holds."""
        with self._sessions() as session:
            return _truck_fact(session, epc)

    def tos_facts(
        self, containers: Sequence[str], truck_epc: str | None
    ) -> tuple[TruckFact | None, tuple[AppointmentFact, ...], tuple[HoldFact, ...]]:
        with self._sessions() as session:
            truck = _truck_fact(session, truck_epc)
            company = truck.company_code if truck is not None else None
            query = select(models.Appointment).where(models.Appointment.status == "open")
            rows = session.scalars(query).all()
            appointments = tuple(
                AppointmentFact(
                    a.reference,
                    a.direction,
                    a.container_number,
                    a.company_code,
                    a.truck_epc,
                    a.window_start,
                    a.window_end,
                    a.yard_position,
                )
                for a in rows
                if a.container_number in containers
                or (truck_epc is not None and a.truck_epc == truck_epc)
                or (company is not None and a.company_code == company)
            )
            holds = tuple(
                HoldFact(h.container_number, h.kind, h.reason)
                for h in session.scalars(
                    select(models.Hold).where(
                        models.Hold.container_number.in_(list(containers)),
                        models.Hold.released_at.is_(None),
                    )
                )
            )
            return truck, appointments, holds

    # --- decision and after -------------------------------------------------------------------

    def decide(
        self,
        tx_id: int,
        result: DecisionResult,
        at: datetime,
        appointments: Sequence[AppointmentFact],
        truck: TruckFact | None,
    ) -> models.GateTransaction:
        """Store the decision; on PROCEED also the gate pass number and the resolved moves."""
        state = {
            Decision.PROCEED: TransactionState.PROCEED,
            Decision.TROUBLE: TransactionState.TROUBLE,
            Decision.INSPECTION: TransactionState.INSPECTION,
        }[result.decision]
        with self._sessions.begin() as session:
            tx = session.get_one(models.GateTransaction, tx_id)
            tx.state = state
            tx.decision = result.decision
            tx.reasons = reasons_json(result.reasons)
            tx.decided_at = at
            if truck is not None:
                tx.company_code = truck.company_code
            if result.decision is Decision.PROCEED:
                positions = {a.container_number: a.yard_position for a in appointments}
                resolve(
                    session,
                    tx,
                    site=self._site,
                    gate=self._gate,
                    resolved_by="auto",
                    yard_positions=positions,
                )
            self._event(session, tx, "update")
            session.flush()
            session.expunge(tx)
            return tx

    def set_state(
        self, tx_id: int, state: TransactionState, extra_reason: Reason | None = None
    ) -> None:
        with self._sessions.begin() as session:
            tx = session.get_one(models.GateTransaction, tx_id)
            tx.state = state
            if extra_reason is not None:
                tx.reasons = [*tx.reasons, *reasons_json([extra_reason])]
                if state is TransactionState.TROUBLE:
                    tx.decision = Decision.TROUBLE
            if state is TransactionState.CLOSED:
                tx.closed_at = utcnow()
            self._event(session, tx, "end" if state is TransactionState.CLOSED else "update")

    def with_session(self, action: Callable[..., T], *args: Any) -> T:
        """Run `action(session, *args)` in one committed database transaction."""
        with self._sessions.begin() as session:
            return action(session, *args)

    def lane_state(
        self,
        lane: str,
        state: str,
        transaction_uuid: str | None,
        devices: Sequence[DeviceHealth],
        detail: str,
    ) -> None:
        with self._sessions.begin() as session:
            queue_lane_state(session, self._site, lane, state, transaction_uuid, devices, detail)

    def load(self, tx_id: int) -> models.GateTransaction:
        with self._sessions() as session:
            tx = session.get_one(models.GateTransaction, tx_id)
            _ = tx.containers, tx.scans, tx.credential_checks, tx.reads
            session.expunge_all()
            return tx

    def unfinished(self, lane: str) -> list[tuple[int, str, str]]:
        """Transactions of a lane not yet closed: (id, uuid, state), oldest first."""
        with self._sessions() as session:
            rows = session.execute(
                select(
                    models.GateTransaction.id,
                    models.GateTransaction.uuid,
                    models.GateTransaction.state,
                )
                .where(
                    models.GateTransaction.lane == lane,
                    models.GateTransaction.state != TransactionState.CLOSED,
                )
                .order_by(models.GateTransaction.id)
            ).all()
            return [(r[0], r[1], r[2]) for r in rows]


def resolve(
    session: Session,
    tx: models.GateTransaction,
    *,
    site: str,
    gate: str,
    resolved_by: str,
    yard_positions: dict[str | None, str | None] | None = None,
) -> list[models.Move]:
    """Give a transaction its gate pass number and queue its resolved moves for the TOS.

    Used by the lane on an automatic PROCEED and by the kiosk when a clerk approves.
    """
    if yard_positions is None:
        numbers = [c.container_number for c in tx.containers if c.container_number]
        yard_positions = {
            a.container_number: a.yard_position
            for a in session.scalars(
                select(models.Appointment).where(models.Appointment.container_number.in_(numbers))
            )
        }
    if tx.gate_pass_number is None:
        tx.gate_pass_number = f"{gate}-{next_counter(session, 'gate_pass'):06d}"
    tx.resolved_by = resolved_by
    tx.details = {
        **(tx.details or {}),
        "yard_positions": {k: v for k, v in yard_positions.items() if k and v},
    }
    kind = MoveKind.GATE_IN if tx.direction == "in" else MoveKind.GATE_OUT
    moves = []
    for container in tx.containers:
        if container.container_number is None:
            continue
        move = models.Move(
            kind=kind,
            transaction_id=tx.id,
            lane=tx.lane,
            container_number=container.container_number,
            size_type=container.size_type,
            from_location=f"gate {gate} lane {tx.lane}" if kind == "gate_in" else None,
            to_location=yard_positions.get(container.container_number),
            truck=tx.truck_epc,
            chassis_number=tx.chassis_number,
            details={"gate_pass_number": tx.gate_pass_number},
        )
        queue_move(session, site, move, transaction=tx)
        moves.append(move)
    return moves


def _truck_fact(session: Session, epc: str | None) -> TruckFact | None:
    if epc is None:
        return None
    row = session.scalar(select(models.Truck).where(models.Truck.epc == epc))
    if row is None:
        return TruckFact(epc, False, None)
    return TruckFact(epc, True, row.company.code if row.company else None, row.plate)


def next_counter(session: Session, name: str) -> int:
    """Increment a named counter inside the caller's transaction."""
    counter = session.scalar(
        select(models.Counter).where(models.Counter.name == name).with_for_update()
    )
    if counter is None:
        counter = models.Counter(name=name, value=0)
        session.add(counter)
    counter.value += 1
    session.flush()
    return counter.value
