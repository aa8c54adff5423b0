"""Database tables (SQLAlchemy 2.x). The schema itself is created by Alembic migrations.

Times are stored as timezone-aware UTC. The full FASC-N is never stored: credentials are
kept as a keyed hash and the last four digits of the credential number.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from gated.domain import utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite keeps no zone; it gets UTC back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the gate stores only timezone-aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Stamp = UtcDateTime()


def new_uuid() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


# --- the gate transaction and its evidence ---------------------------------------------------


class GateTransaction(Base):
    """One truck visit through one lane, from arrival to the truck leaving."""

    __tablename__ = "gate_transaction"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    lane: Mapped[str] = mapped_column(String(32), index=True)
    direction: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(16), index=True)
    decision: Mapped[str | None] = mapped_column(String(16), index=True)
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    arrived_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow, index=True)
    decided_at: Mapped[datetime | None] = mapped_column(Stamp)
    closed_at: Mapped[datetime | None] = mapped_column(Stamp)
    updated_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow, onupdate=utcnow)
    truck_epc: Mapped[str | None] = mapped_column(String(128), index=True)
    truck_id: Mapped[int | None] = mapped_column(ForeignKey("truck.id"))
    company_code: Mapped[str | None] = mapped_column(String(32))
    chassis_number: Mapped[str | None] = mapped_column(String(16))
    gross_weight_kg: Mapped[float | None] = mapped_column(Float)
    gate_pass_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    containers: Mapped[list[TransactionContainer]] = relationship(
        back_populates="transaction",
        cascade="all, delete-orphan",
        order_by="TransactionContainer.position",
    )
    reads: Mapped[list[ContainerReadRow]] = relationship(
        back_populates="transaction", cascade="all, delete-orphan"
    )
    scans: Mapped[list[RadiationScanRow]] = relationship(
        back_populates="transaction", cascade="all, delete-orphan"
    )
    credential_checks: Mapped[list[CredentialCheckRow]] = relationship(
        back_populates="transaction", cascade="all, delete-orphan"
    )


class TransactionContainer(Base):
    """The fused (or clerk-corrected) container number for one slot of the chassis."""

    __tablename__ = "transaction_container"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("gate_transaction.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 0 front, 1 rear
    container_number: Mapped[str | None] = mapped_column(String(11), index=True)
    size_type: Mapped[str | None] = mapped_column(String(4))
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    source: Mapped[str] = mapped_column(String(16), default="ocr")  # ocr, clerk, tos
    seal: Mapped[str | None] = mapped_column(String(32))
    images: Mapped[list[Any]] = mapped_column(JSON, default=list)
    transaction: Mapped[GateTransaction] = relationship(back_populates="containers")


class ContainerReadRow(Base):
    """One camera image of a transaction and what OCR read on it."""

    __tablename__ = "container_read"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("gate_transaction.id"), index=True)
    camera: Mapped[str | None] = mapped_column(String(32))
    image_path: Mapped[str] = mapped_column(Text)
    container_number: Mapped[str | None] = mapped_column(String(11))
    size_type: Mapped[str | None] = mapped_column(String(4))
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    layout: Mapped[str | None] = mapped_column(String(32))
    regions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    elapsed_ms: Mapped[float] = mapped_column(Float, default=0.0)
    captured_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
    transaction: Mapped[GateTransaction] = relationship(back_populates="reads")


class TagReadRow(Base):
    """An RFID read, kept whether or not it fits a truck visit (unknown tags are flagged)."""

    __tablename__ = "tag_read"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("gate_transaction.id"))
    lane: Mapped[str | None] = mapped_column(String(32))
    machine: Mapped[str | None] = mapped_column(String(32))
    reader: Mapped[str] = mapped_column(String(64))
    antenna: Mapped[int] = mapped_column(Integer)
    epc: Mapped[str] = mapped_column(String(128), index=True)
    rssi: Mapped[float | None] = mapped_column(Float)
    seen_at: Mapped[datetime] = mapped_column(Stamp, index=True)
    known: Mapped[bool] = mapped_column(Boolean, default=False)


class RadiationScanRow(Base):
    """One RPM occupancy with the monitor's and the daemon's verdicts and the whole profile."""

    __tablename__ = "radiation_scan"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("gate_transaction.id"), index=True
    )
    lane: Mapped[str] = mapped_column(String(32))
    occupancy_id: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(Stamp)
    ended_at: Mapped[datetime | None] = mapped_column(Stamp)
    complete: Mapped[bool] = mapped_column(Boolean)
    monitor_gamma_alarm: Mapped[bool] = mapped_column(Boolean)
    monitor_neutron_alarm: Mapped[bool] = mapped_column(Boolean)
    gamma_alarm: Mapped[bool] = mapped_column(Boolean)
    neutron_alarm: Mapped[bool] = mapped_column(Boolean)
    peak_gamma_sigma: Mapped[list[Any]] = mapped_column(JSON, default=list)
    peak_neutron_sigma: Mapped[list[Any]] = mapped_column(JSON, default=list)
    faults: Mapped[list[Any]] = mapped_column(JSON, default=list)
    profile: Mapped[list[Any]] = mapped_column(JSON, default=list)
    transaction: Mapped[GateTransaction | None] = relationship(back_populates="scans")


class CredentialCheckRow(Base):
    """A credential check. Holds a keyed hash of the FASC-N, never the FASC-N."""

    __tablename__ = "credential_check"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("gate_transaction.id"), index=True
    )
    lane: Mapped[str | None] = mapped_column(String(32))
    fascn_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    credential_last4: Mapped[str | None] = mapped_column(String(4))
    valid: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    biometric_status: Mapped[str | None] = mapped_column(String(32))
    biometric_score: Mapped[int | None] = mapped_column(Integer)
    checked_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
    transaction: Mapped[GateTransaction | None] = relationship(back_populates="credential_checks")


class Move(Base):
    """A resolved container move for the TOS; the TOS acknowledges it by event id."""

    __tablename__ = "move"
    # the TOS bridge looks for unacknowledged moves by their last send (migration 0002)
    __table_args__ = (Index("ix_move_unacked", "acked_at", "last_sent_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    kind: Mapped[str] = mapped_column(String(16))  # gate_in, gate_out, yard
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("gate_transaction.id"))
    lane: Mapped[str | None] = mapped_column(String(32))
    machine: Mapped[str | None] = mapped_column(String(32))
    container_number: Mapped[str] = mapped_column(String(11), index=True)
    size_type: Mapped[str | None] = mapped_column(String(4))
    from_location: Mapped[str | None] = mapped_column(String(64))
    to_location: Mapped[str | None] = mapped_column(String(64))
    truck: Mapped[str | None] = mapped_column(String(64))
    chassis_number: Mapped[str | None] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow, index=True)
    acked_at: Mapped[datetime | None] = mapped_column(Stamp)
    last_sent_at: Mapped[datetime | None] = mapped_column(Stamp)
    send_count: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OutboxEvent(Base):
    """An event waiting for the broker's acknowledgement. Written in the same database
    transaction as the state change it reports; removed only when the broker acknowledged it."""

    __tablename__ = "outbox_event"
    __table_args__ = (Index("ix_outbox_pending", "published_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    topic: Mapped[str] = mapped_column(String(255))
    lane: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    retain: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(Stamp)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


# --- who and what is expected at the gate ---------------------------------------------------


class TruckingCompany(Base):
    __tablename__ = "trucking_company"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))


class Truck(Base):
    """Truck registry: a tag EPC names a truck of a trucking company."""

    __tablename__ = "truck"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    epc: Mapped[str] = mapped_column(String(128), unique=True)
    plate: Mapped[str | None] = mapped_column(String(32))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("trucking_company.id"))
    company: Mapped[TruckingCompany | None] = relationship()


class Driver(Base):
    """A driver registered to a trucking company, known by the keyed hash of the FASC-N."""

    __tablename__ = "driver"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    fascn_hash: Mapped[str] = mapped_column(String(64), unique=True)
    credential_last4: Mapped[str] = mapped_column(String(4))
    name: Mapped[str | None] = mapped_column(String(128))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("trucking_company.id"))
    card_expires_on: Mapped[date | None] = mapped_column(Date)
    company: Mapped[TruckingCompany | None] = relationship()


class Appointment(Base):
    """A pre-advice / appointment published by the TOS."""

    __tablename__ = "appointment"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(3))  # in / out
    container_number: Mapped[str | None] = mapped_column(String(11), index=True)
    company_code: Mapped[str | None] = mapped_column(String(32))
    truck_epc: Mapped[str | None] = mapped_column(String(128))
    window_start: Mapped[datetime | None] = mapped_column(Stamp)
    window_end: Mapped[datetime | None] = mapped_column(Stamp)
    yard_position: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")
    updated_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow, onupdate=utcnow)


class Hold(Base):
    """A customs or line hold on a container; released holds stay for the record."""

    __tablename__ = "hold"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    container_number: Mapped[str] = mapped_column(String(11), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # customs, line, terminal
    reason: Mapped[str | None] = mapped_column(Text)
    placed_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(Stamp)


class CanceledCard(Base):
    """One entry of the TSA Canceled Card List, as a keyed hash of the FASC-N."""

    __tablename__ = "canceled_card"

    fascn_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    canceled_on: Mapped[date] = mapped_column(Date)


class CanceledCardImport(Base):
    __tablename__ = "canceled_card_import"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    imported_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
    source: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer)
    bad_rows: Mapped[int] = mapped_column(Integer)


# --- records --------------------------------------------------------------------------------


class AuditLog(Base):
    """Every clerk action: who, when, before, after, why."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(Stamp, default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("gate_transaction.id"))
    before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str | None] = mapped_column(Text)


class UnmatchedEvent(Base):
    """A device event that fit no truck visit: recorded, never dropped."""

    __tablename__ = "unmatched_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lane: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DeviceEventRow(Base):
    """A device lost or recovered, for the lane board's history."""

    __tablename__ = "device_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lane: Mapped[str | None] = mapped_column(String(32))
    device: Mapped[str] = mapped_column(String(64))
    up: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)


class Counter(Base):
    """Named counters that survive restarts: gate pass numbers, bad-input counts."""

    __tablename__ = "counter"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[int] = mapped_column(BigInteger, default=0)
