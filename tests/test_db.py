"""The same migrations build the schema on SQLite and PostgreSQL; a full transaction round-trips."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, select

from gated import models
from gated.db import make_engine, session_factory, upgrade
from tests.servers import Postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gate.db'}"
    else:
        server: Postgres = request.getfixturevalue("postgres")
        url = server.create_database(f"t_{tmp_path.name.lower().replace('-', '_')}"[:60])
    engine = make_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_migrations_are_idempotent_and_complete(engine: Engine) -> None:
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert set(models.Base.metadata.tables) <= tables


def test_full_transaction_round_trip(engine: Engine) -> None:
    sessions = session_factory(engine)
    arrived = datetime(2026, 12, 4, 10, 30, 1, tzinfo=UTC)
    with sessions.begin() as session:
        company = models.TruckingCompany(code="ACME", name="Acme Haulage")
        truck = models.Truck(epc="3005FB63AC1F3841EC880467", plate="AB-123", company=company)
        session.add_all([company, truck])
        session.flush()
        tx = models.GateTransaction(
            lane="1", direction="in", state="proceed", decision="PROCEED",
            reasons=[{"code": "radiation_clean", "text": "radiation scan clean"}],
            arrived_at=arrived, truck_epc=truck.epc, truck_id=truck.id, company_code="ACME",
            gross_weight_kg=31250.5, gate_pass_number="G1-000001", details={"k": [1, 2]},
        )
        tx.containers.append(models.TransactionContainer(
            position=0, container_number="TGHU7870036", size_type="22G1", confidence=0.97,
            images=["a.jpg", "b.jpg"],
        ))
        tx.reads.append(models.ContainerReadRow(
            camera="AH", image_path="a.jpg", container_number="TGHU7870036", size_type="22G1",
            confidence=0.97, layout="horizontal", regions=[[10, 20, 300, 60]],
        ))
        tx.scans.append(models.RadiationScanRow(
            lane="1", occupancy_id=17, started_at=arrived, ended_at=arrived, complete=True,
            monitor_gamma_alarm=False, monitor_neutron_alarm=False, gamma_alarm=False,
            neutron_alarm=False, peak_gamma_sigma=[1.2, 0.4, 2.0, 1.1], faults=[],
            profile=[{"t": arrived.isoformat(), "g": [250, 260, 240, 255], "n": [3, 4]}],
        ))
        tx.credential_checks.append(models.CredentialCheckRow(
            lane="1", fascn_hash="ab" * 32, credential_last4="2446", valid=True, reasons=[],
        ))
        session.add(tx)
        session.add(models.Move(kind="gate_in", container_number="TGHU7870036", lane="1",
                                to_location="A1-12-03-1"))
        session.add(models.OutboxEvent(topic="moves", lane="1", payload="{}"))

    with sessions() as session:
        loaded = session.scalars(select(models.GateTransaction)).one()
        assert loaded.arrived_at == arrived
        assert loaded.reasons[0]["code"] == "radiation_clean"
        assert loaded.details == {"k": [1, 2]}
        assert loaded.containers[0].container_number == "TGHU7870036"
        assert loaded.containers[0].images == ["a.jpg", "b.jpg"]
        assert loaded.reads[0].regions == [[10, 20, 300, 60]]
        assert loaded.scans[0].profile[0]["g"] == [250, 260, 240, 255]
        assert loaded.credential_checks[0].credential_last4 == "2446"
        assert loaded.gross_weight_kg == pytest.approx(31250.5)
        truck = session.get_one(models.Truck, loaded.truck_id)
        assert truck.company is not None and truck.company.code == "ACME"
        move = session.scalars(select(models.Move)).one()
        assert len(move.event_id) == 36
        assert session.scalars(select(models.OutboxEvent)).one().published_at is None


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()
