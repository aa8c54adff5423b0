"""Seed data for the kiosk and resolution tests: a site, a real SQLite file, gate transactions.

Images are real gate photos from ../shared/data when present, otherwise hwsim's synthetic ones.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from argon2 import PasswordHasher
from sqlalchemy.orm import Session, sessionmaker

from gated.config import SiteConfig
from gated.db import make_engine, session_factory, upgrade
from gated.domain import utcnow
from gated.models import (
    Appointment,
    ContainerReadRow,
    CredentialCheckRow,
    GateTransaction,
    RadiationScanRow,
    TransactionContainer,
    Truck,
    TruckingCompany,
)

REAL_PHOTOS = Path(__file__).resolve().parent.parent.parent / "shared/data/real_containers"
# cheap hashing parameters: the tests log in often; production uses argon2's defaults
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORDS = {"clerk1": "clerk-pass-1", "super1": "super-pass-1", "view1": "view-pass-1"}
ROLES = {"clerk1": "clerk", "super1": "supervisor", "view1": "viewer"}


def _lane(n: int, direction: str) -> dict[str, Any]:
    # every lane has devices of its own (the configuration refuses shared ones); nothing
    # listens on these ports: the kiosk tests never start the lanes
    return {
        "id": str(n + 1),
        "direction": direction,
        "cameras": [{"name": "AH", "snapshot_url": f"http://127.0.0.1:9/{n}/ah.jpg"}],
        "rpm": {"transport": "modbus", "host": "127.0.0.1", "port": 15020 + 2 * n},
        "plc": {"host": "127.0.0.1", "port": 15021 + 2 * n},
    }


def make_config(tmp_path: Path, lanes: int = 2) -> SiteConfig:
    """A site with `lanes` lanes, a SQLite file and three kiosk users (clerk, supervisor,
    viewer) whose passwords are in PASSWORDS."""
    users = [
        {"username": name, "role": ROLES[name], "password_hash": FAST_HASHER.hash(password)}
        for name, password in PASSWORDS.items()
    ]
    document = {
        "site_id": "TEST",
        "gate_id": "G1",
        "database": {"url": f"sqlite:///{tmp_path / 'gated.db'}"},
        "mqtt": {"host": "127.0.0.1"},
        "kiosk": {"secret_file": str(tmp_path / "kiosk.secret"), "users": users},
        "images": {"directory": str(tmp_path / "images")},
        "security": {"fascn_key_file": str(tmp_path / "fascn.key")},
        "lanes": [_lane(n, "in" if n % 2 == 0 else "out") for n in range(lanes)],
    }
    return SiteConfig.model_validate(document)


def make_database(config: SiteConfig) -> tuple[Any, sessionmaker[Session]]:
    engine = make_engine(config.database.url)
    upgrade(engine)
    return engine, session_factory(engine)


@dataclass
class SeededPhoto:
    camera: str
    path: Path
    regions: list[Any] = field(default_factory=list)


def photos(config: SiteConfig, key: str, source: str = "auto") -> list[SeededPhoto]:
    """Three images of one truck under images.directory, with the code regions OCR found.

    source "real": the shared gate photos (copied into the test's temporary directory, never
    into the repository); "synthetic": pictures drawn by hwsim's renderer (safe to publish,
    e.g. in docs); "auto": real when present, else synthetic.
    """
    directory = Path(config.images.directory) / key
    directory.mkdir(parents=True, exist_ok=True)
    if source == "real" or (source == "auto" and REAL_PHOTOS.is_dir()):
        return _real_photos(directory)
    return _synthetic_photos(directory)


def _real_photos(directory: Path) -> list[SeededPhoto]:
    regions = {
        "AH": [{"bbox": [880, 510, 500, 90], "text": "BEAU 265693 ?"}],
        "LF": [{"bbox": [1050, 280, 110, 730], "text": "BEAU265G9?"}],
        "RF": [],
    }
    found = []
    for camera, suffix in (("AH", "A01"), ("LF", "C01"), ("RF", "D01")):
        source = REAL_PHOTOS / f"1-124126001-OCR-{camera}-{suffix}.jpg"
        target = directory / source.name
        shutil.copyfile(source, target)  # into the test's temporary image directory only
        found.append(SeededPhoto(camera, target, regions[camera]))
    return found


def _synthetic_photos(directory: Path) -> list[SeededPhoto]:
    from hwsim.images import available_fonts, random_spec, render

    stencil = "dejavu_condensed_bold"
    if stencil not in available_fonts():
        stencil = "hershey_duplex"

    views = (
        ("AH", "front_end_wall_from_above", "horizontal", "BEAU 265693 ?"),
        ("LF", "end_wall_oblique_side_camera", "vertical", "BEAU265G9?"),
        ("RF", "end_wall_oblique_side_camera", "vertical", ""),
    )
    found = []
    for n, (camera, view, layout, text) in enumerate(views):
        spec = random_spec(
            11 + n, container_number="BEAU2656931", size_type="22G1", view=view,
            camera=camera, layout=layout, difficulty=0.5,
        )
        # one container, one paint and one stencil, whichever camera looks at it
        picture = render(replace(spec, paint="blue", font=stencil))
        target = directory / f"{camera}.jpg"
        cv2.imwrite(str(target), picture.image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        regions = [{"bbox": list(picture.region), "text": text}] if text else []
        found.append(SeededPhoto(camera, target, regions))
    return found


def _profile(alarm: bool) -> list[dict[str, Any]]:
    start = utcnow() - timedelta(seconds=20)
    samples = []
    for n in range(40):
        bump = 900.0 if alarm and 15 <= n <= 25 else 0.0
        gamma = [250.0 + 30.0 * np.sin(n / 3.0) + bump * np.exp(-((n - 20) ** 2) / 12.0)] * 4
        samples.append(
            {
                "t": (start + timedelta(milliseconds=200 * n)).isoformat(),
                "g": [round(float(g), 1) for g in gamma],
                "n": [3.0, 4.0],
            }
        )
    return samples


def seed_trouble(
    session: Session,
    config: SiteConfig,
    *,
    lane: str = "1",
    truck_epc: str = "E2003412B802011526701234",
    read: str | None = None,
    minutes_ago: float = 3.0,
    reason: str = "container number unreadable",
    rpm_alarm: bool = False,
    state: str = "trouble",
    photo_source: str = "auto",
) -> int:
    """A transaction waiting for a clerk (trouble, or inspection) with images, reads, a scan,
    a credential and an appointment."""
    company = session.query(TruckingCompany).filter_by(code="ACME").one_or_none()
    if company is None:
        company = TruckingCompany(code="ACME", name="Acme Haulage")
        session.add(company)
        session.flush()
    truck = session.query(Truck).filter_by(epc=truck_epc).one_or_none()
    if truck is None:
        truck = Truck(epc=truck_epc, plate=f"TR-{secrets.randbelow(900) + 100}", company=company)
        session.add(truck)
        session.flush()
    if session.query(Appointment).filter_by(reference="APT-0001").one_or_none() is None:
        session.add(
            Appointment(
                reference="APT-0001",
                direction="in",
                container_number="BEAU2656931",
                company_code="ACME",
                truck_epc="E2003412B802011526701234",
                window_start=utcnow() - timedelta(hours=1),
                window_end=utcnow() + timedelta(hours=1),
                yard_position="A1-12-03-2",
            )
        )

    arrived = utcnow() - timedelta(minutes=minutes_ago)
    transaction = GateTransaction(
        lane=lane,
        direction=config.lane(lane).direction,
        state=state,
        decision=state.upper(),
        reasons=[{"code": "container_unreadable", "text": reason, "blocking": True}],
        arrived_at=arrived,
        decided_at=arrived + timedelta(seconds=8),
        truck_epc=truck_epc,
        truck_id=truck.id,
        company_code="ACME",
        chassis_number="FFFZ0163937",
        gross_weight_kg=24350.0,
    )
    transaction.containers.append(
        TransactionContainer(position=0, container_number=read, size_type="22G1", confidence=0.31)
    )
    session.add(transaction)
    session.flush()

    for photo in photos(config, f"t{transaction.id}", photo_source):
        session.add(
            ContainerReadRow(
                transaction_id=transaction.id,
                camera=photo.camera,
                image_path=str(photo.path),
                container_number=read,
                size_type="22G1" if photo.regions else None,
                confidence=0.31 if photo.regions else 0.0,
                layout=("vertical" if photo.camera in ("LF", "RF") else "horizontal")
                if photo.regions
                else None,
                regions=photo.regions,
                error=None if photo.regions else "no code region found",
                elapsed_ms=180.0,
                captured_at=arrived + timedelta(seconds=1),
            )
        )
    session.add(
        RadiationScanRow(
            transaction_id=transaction.id,
            lane=lane,
            occupancy_id=transaction.id,
            started_at=arrived,
            ended_at=arrived + timedelta(seconds=8),
            complete=True,
            monitor_gamma_alarm=rpm_alarm,
            monitor_neutron_alarm=False,
            gamma_alarm=rpm_alarm,
            neutron_alarm=False,
            peak_gamma_sigma=[9.5 if rpm_alarm else 1.2] * 4,
            peak_neutron_sigma=[0.4, 0.3],
            faults=[],
            profile=_profile(rpm_alarm),
        )
    )
    session.add(
        CredentialCheckRow(
            transaction_id=transaction.id,
            lane=lane,
            fascn_hash="ab" * 32,
            credential_last4="2446",
            valid=True,
            reasons=[],
            biometric_status="match",
            biometric_score=212,
        )
    )
    session.flush()
    return transaction.id
