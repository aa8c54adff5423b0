"""Building blocks for lane tests: a site with a real SQLite file and the lane's inputs.

The device ports here record what the lane asked of them; the simulator-backed tests use the
real drivers against hwsim instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gated import models
from gated.config import SiteConfig, load_config
from gated.db import make_engine, session_factory, upgrade
from gated.domain import ContainerRead, CredentialCheck, FusedContainer, Reason
from gated.ports import CapturedImage

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "example.yaml"


def site_config(tmp_path: Path, **lane_overrides: Any) -> SiteConfig:
    config = load_config(EXAMPLE)
    lane = config.lanes[0].model_copy(
        update={
            "timeouts": config.lanes[0].timeouts.model_copy(
                update={"identify_s": 0.5, "scan_s": 0.5, "credential_s": 0.5}
            ),
            "scale": None,
            **lane_overrides,
        }
    )
    return config.model_copy(
        update={
            "database": config.database.model_copy(update={"url": f"sqlite:///{tmp_path}/g.db"}),
            "lanes": [lane],
        }
    )


def database(config: SiteConfig) -> Any:
    engine = make_engine(config.database.url)
    upgrade(engine)
    return engine, session_factory(engine)


def seed(sessions: Any, containers: Sequence[str], epc: str = "E200TRUCK1") -> None:
    now = datetime.now(UTC)
    with sessions.begin() as session:
        company = models.TruckingCompany(code="ACME", name="Acme Haulage")
        session.add(company)
        session.add(models.Truck(epc=epc, plate="AB-123", company=company))
        for number in containers:
            session.add(models.Appointment(
                reference=f"APT-{number}", direction="in", container_number=number,
                company_code="ACME", window_start=now - timedelta(hours=1),
                window_end=now + timedelta(hours=1), yard_position="A1-04-02-1",
            ))


class RecordingBarrier:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.problem: str | None = None

    async def open_barrier(self) -> None:
        self.calls.append("open")

    async def close_barrier(self) -> None:
        self.calls.append("close")

    async def set_light(self, colour: str) -> None:
        self.calls.append(f"light:{colour}")


class Monitor:
    problem: str | None = None


class RecordingPrinter:
    def __init__(self) -> None:
        self.tickets: list[tuple[str, list[str]]] = []

    async def print_ticket(self, lines: list[str], title: str) -> None:
        self.tickets.append((title, lines))


class StillCameras:
    """Cameras whose pictures are files already on disk."""

    def __init__(self, images: dict[str, str]) -> None:
        self.images = images

    async def capture(self, transaction_uuid: str) -> list[CapturedImage]:
        return [CapturedImage(camera, path) for camera, path in self.images.items()]


class KnownReads:
    """An OCR port answering from a table (the OCR itself is tested on real photos)."""

    def __init__(self, reads: dict[str, str | None]) -> None:
        self.reads = reads

    def read(self, path: str, camera: str | None) -> ContainerRead:
        number = self.reads.get(camera or "")
        return ContainerRead(path, camera, number, "22G1" if number else None,
                             0.95 if number else 0.0, region=(0, 0, 10, 10))

    def fuse(self, reads: Sequence[ContainerRead]) -> list[FusedContainer]:
        numbers: dict[str, list[str]] = {}
        for read in reads:
            if read.container_number:
                numbers.setdefault(read.container_number, []).append(read.image)
        return [FusedContainer(n, "22G1", 0.95, tuple(i)) for n, i in numbers.items()]


class TableCredentials:
    def __init__(self, valid: bool = True, reason: Reason | None = None) -> None:
        self.valid = valid
        self.reason = reason

    def check(self, session: Any, card: Any, company_code: str | None) -> CredentialCheck:
        reasons = () if self.reason is None else (self.reason,)
        return CredentialCheck(self.valid, reasons, "f" * 64, "2446")
