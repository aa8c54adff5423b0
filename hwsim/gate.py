"""A simulated gate complex: every device of every lane of a site configuration, on loopback.

The devices listen where the daemon's configuration says they are, so the same file drives
both `hwsim run --config FILE` and `gated run --config FILE`.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gated.config import LaneConfig, SiteConfig
from hwsim.cameras import DEFAULT_CAMERAS, CameraSimulator
from hwsim.card_reader import SimulatedCardReader, scripted_fascn
from hwsim.images import PhotoFolder
from hwsim.llrp import SimulatedReader
from hwsim.plc import SimulatedPlc
from hwsim.printer import SimulatedPrinter
from hwsim.rpm import SimulatedRpm
from hwsim.scale import SimulatedScale
from hwsim.scenario import TruckSpec
from hwsim.world import LaneRig

_LOGGER = logging.getLogger(__name__)


@dataclass
class Listening:
    lane: str
    device: str
    where: str


class SimulatedGate:
    def __init__(
        self,
        site: SiteConfig,
        state_dir: Path,
        photos: PhotoFolder | None = None,
        seed: int = 1,
        barrier_travel_s: float = 1.0,
        difficulty: float = 0.35,
    ) -> None:
        self.site = site
        self.state_dir = state_dir
        self.photos = photos
        self.seed = seed
        self.barrier_travel_s = barrier_travel_s
        self.difficulty = difficulty
        self.rigs: dict[str, LaneRig] = {}
        self.cameras: CameraSimulator | None = None
        self.listening: list[Listening] = []

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        await self._start_cameras()
        for lane in self.site.lanes:
            self.rigs[lane.id] = await self._start_lane(lane)

    async def _start_cameras(self) -> None:
        urls = [urlsplit(c.snapshot_url) for lane in self.site.lanes for c in lane.cameras]
        if not urls:
            return
        ports = {u.port for u in urls}
        if len(ports) != 1:
            raise ValueError("the simulator serves every camera from one HTTP port")
        names = {c.name for lane in self.site.lanes for c in lane.cameras}
        cameras = [c for c in DEFAULT_CAMERAS if c.name in names]
        self.cameras = CameraSimulator(
            [lane.id for lane in self.site.lanes], cameras, port=ports.pop() or 80,
            photos=self.photos, difficulty=self.difficulty,
        )
        await self.cameras.start()
        self.listening.append(Listening("*", "cameras", f"http://127.0.0.1:{self.cameras.port}/"))

    async def _start_lane(self, lane: LaneConfig) -> LaneRig:
        rig = LaneRig(lane.id)
        if lane.rfid is not None:
            rig.reader = SimulatedReader(
                "127.0.0.1", lane.rfid.port, name=f"lane {lane.id} llrp", seed=self.seed
            )
            await rig.reader.start()
            self.listening.append(Listening(lane.id, "llrp", f"127.0.0.1:{rig.reader.port}"))
        if lane.rpm.transport == "modbus" and lane.rpm.port is not None:
            rig.rpm = SimulatedRpm(
                "127.0.0.1", lane.rpm.port, device_id=lane.rpm.device_id,
                registers=lane.rpm.registers, seed=self.seed + int(lane.id, 36),
            )
            await rig.rpm.start()
            self.listening.append(Listening(lane.id, "rpm (modbus)", f"127.0.0.1:{lane.rpm.port}"))
        else:
            _LOGGER.warning("lane %s: only Modbus monitors are simulated by hwsim run", lane.id)
        rig.plc = SimulatedPlc(
            "127.0.0.1", lane.plc.port, device_id=lane.plc.device_id,
            registers=lane.plc.registers, barrier_travel_s=self.barrier_travel_s,
        )
        await rig.plc.start()
        self.listening.append(Listening(lane.id, "plc (modbus)", f"127.0.0.1:{lane.plc.port}"))
        if lane.card_reader is not None:
            rig.card_reader = SimulatedCardReader(lane.card_reader.port)
            self.listening.append(Listening(lane.id, "card reader", lane.card_reader.port))
        if lane.scale is not None:
            rig.scale = SimulatedScale(lane.scale.port, protocol=lane.scale.protocol)
            await rig.scale.start()
            self.listening.append(Listening(lane.id, "scale", lane.scale.port))
        if lane.printer is not None:
            rig.printer = SimulatedPrinter(lane.printer.port)
            await rig.printer.start()
            self.listening.append(Listening(lane.id, "printer", lane.printer.port))
        return rig

    async def stop(self) -> None:
        for rig in self.rigs.values():
            for device in (rig.reader, rig.rpm, rig.plc):
                if device is not None:
                    await device.stop()
            for closable in (rig.scale, rig.printer):
                if closable is not None:
                    await closable.close()
            if rig.card_reader is not None:
                rig.card_reader.close()
        if self.cameras is not None:
            await self.cameras.stop()

    # --- what the site enrols ----------------------------------------------------------------

    def write_enrolment(self, trucks: list[TruckSpec]) -> dict[str, str]:
        """Drivers to enrol and the canceled card list, as a badging office would hand over."""
        companies = sorted({t.company for t in trucks} | {"ACME"})
        today = date.today()
        drivers = self.state_dir / "drivers.csv"
        with drivers.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["fascn", "company", "name", "card_expires_on"])
            for company in companies:
                for kind in ("valid", "expired", "canceled"):
                    expires = today - timedelta(days=30) if kind == "expired" \
                        else today + timedelta(days=900)
                    writer.writerow([scripted_fascn(kind, company).to_hex(), company,
                                     f"{kind} driver of {company}", expires.isoformat()])
        ccl = self.state_dir / "ccl.txt"
        with ccl.open("w", encoding="ascii") as handle:
            handle.write("# simulated TSA canceled card list\n")
            for company in companies:
                canceled = today - timedelta(days=3)
                handle.write(f"{scripted_fascn('canceled', company).to_hex()} "
                             f"{canceled.day:02d}{canceled.strftime('%b').upper()}"
                             f"{canceled.year}\n")
        return {"drivers": str(drivers), "ccl": str(ccl)}

    def write_devices(self, extra: dict[str, Any]) -> Path:
        path = self.state_dir / "devices.json"
        path.write_text(json.dumps({
            "devices": [item.__dict__ for item in self.listening], **extra,
        }, indent=2))
        return path


def assign_photo_containers(trucks: list[TruckSpec], photos: PhotoFolder) -> list[TruckSpec]:
    """Give trucks that carry containers the containers of real truck passes, in turn."""
    captures = []
    for _capture, shots in sorted(photos.captures().items()):
        front = Counter(p.container_number for p in shots if p.camera in ("AH", "LF", "RF"))
        rear = Counter(p.container_number for p in shots if p.camera in ("AS", "LB"))
        numbers = [c.most_common(1)[0][0] for c in (front, rear) if c]
        captures.append(list(dict.fromkeys(numbers)))
    result = []
    turn = 0
    for truck in trucks:
        if truck.containers and not truck.unreadable and captures:
            numbers = captures[turn % len(captures)]
            turn += 1
            load = "two_20" if len(numbers) == 2 else "one_20"
            truck = truck.model_copy(update={"containers": numbers, "load": load})
        result.append(truck)
    return result
