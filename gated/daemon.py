"""`gated run`: wire the configured subsystems together and supervise them."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gated.config import LaneConfig, SiteConfig
from gated.db import make_engine, session_factory, upgrade
from gated.domain import CredentialCheck, DeviceHealth, utcnow
from gated.health import HealthBoard
from gated.lane import LaneDevices, LaneRunner, SafetyRefusal
from gated.metrics import Metrics
from gated.ocr_pool import RenewingProcessPool
from gated.ocr_service import OcrService, start_ocr_worker
from gated.ports import PlcInputs
from gated.supervisor import Service, Supervisor
from gated.transactions import TransactionStore

_LOGGER = logging.getLogger(__name__)


OCR_WORKERS = 2


class CredentialService:
    """The credential port of the lanes: the full check against the site's database."""

    def __init__(self, config: SiteConfig) -> None:
        from gated.credentials import load_fascn_key

        self._key = load_fascn_key(config.security.fascn_key_file)
        self._security = config.security

    def check(self, session: Session, card: Any, company_code: str | None) -> CredentialCheck:
        from gated.credentials import check_credential

        return check_credential(
            session, card, key=self._key, security=self._security,
            company_code=company_code, now=utcnow(),
        )


class GateEffects:
    """What clerk decisions do in the lanes (gated.effects.LaneEffects)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    def _lane(self, lane: str) -> LaneRunner:
        try:
            return self._daemon.lanes[lane]
        except KeyError:
            raise SafetyRefusal(f"lane {lane} is not run by this gate") from None

    def check_release(self, lane: str, transaction_id: int) -> None:
        self._lane(lane).check_release_safety(transaction_id)

    async def open_barrier(self, lane: str, transaction_id: int) -> None:
        runner = self._lane(lane)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        runner.release(transaction_id, future)
        async with asyncio.timeout(30):
            await future

    async def direct_to_inspection(self, lane: str, transaction_id: int) -> None:
        await self._lane(lane).direct_to_inspection(transaction_id)

    async def print_tickets(self, lane: str, transaction_id: int) -> None:
        await self._lane(lane).print_tickets(transaction_id)

    async def rerun_ocr(self, transaction_id: int) -> None:
        tx = self._daemon.store.load(transaction_id)
        await self._lane(tx.lane).rerun_ocr(transaction_id)


class Daemon:
    """Everything `gated run` starts for one gate complex."""

    def __init__(self, config: SiteConfig, with_kiosk: bool = True) -> None:
        self.config = config
        self.engine: Engine = make_engine(config.database.url)
        upgrade(self.engine)
        self.sessions = session_factory(self.engine)
        self.store = TransactionStore(self.sessions, config.site_id, config.gate_id)
        self.health = HealthBoard()
        self.metrics = Metrics()
        self.health.subscribe(self._count_health)
        self.ocr_executor = RenewingProcessPool(OCR_WORKERS, initializer=start_ocr_worker)
        self.lanes: dict[str, LaneRunner] = {}
        self.services: list[Service] = []
        self._closers: list[Any] = []
        self.started_at = utcnow()
        self._build_shared()
        for lane in config.lanes:
            self._add_lane(lane)
        self._add_yard()
        if with_kiosk:
            self._add_kiosk()

    def _count_health(self, health: DeviceHealth) -> None:
        self.metrics.set(
            "gated_device_up", 1.0 if health.up else 0.0,
            lane=health.lane or "", device=health.device,
        )

    # --- assembly ------------------------------------------------------------------------

    def _build_shared(self) -> None:
        from gated.image_store import ImageStore, run_retention
        from tos_bridge import TosBridge

        self.images = ImageStore(self.config.images)
        self.services.append(Service("image-retention", lambda: run_retention(self.images)))
        self.ocr = OcrService(self.config)
        self.credentials = CredentialService(self.config)
        self.bridge = TosBridge(self.config, self.sessions, on_health=self.health.report)
        self.services.append(Service("tos-bridge", self.bridge.run))

    def _add_lane(self, lane: LaneConfig) -> None:
        from drivers.card_reader import CardReader
        from drivers.plc import GatePlc
        from drivers.printer import TicketPrinter
        from drivers.rpm import open_monitor
        from drivers.scale import Scale
        from gated.cameras import CameraSet

        report = self.health.report
        runner_box: list[LaneRunner] = []

        def plc_changed(_change: Any) -> None:
            state = plc.state
            runner_box[0].on_plc(PlcInputs(
                state.entry_loop, state.exit_loop, state.photo_eye, state.container_present,
                state.container_count,
            ))

        def occupancy(occupied: bool) -> None:
            if occupied:
                runner_box[0].on_occupancy()

        plc = GatePlc(lane.id, lane.plc, on_health=report, on_change=plc_changed)
        monitor = open_monitor(
            lane.id, lane.rpm, self.config.rpm_sigma,
            on_scan=lambda scan: runner_box[0].on_scan(scan),
            on_health=report, on_occupancy=occupancy,
        )
        printer = TicketPrinter(lane.id, lane.printer, on_health=report) if lane.printer else None
        cameras = CameraSet(lane.id, lane.cameras, self.images, on_health=report) \
            if lane.cameras else None
        if cameras is not None:
            self._closers.append(cameras)
        devices = LaneDevices(
            barrier=plc, monitor=monitor, printer=printer, cameras=cameras,
            credentials=self.credentials if lane.card_reader else None,
        )
        runner = LaneRunner(
            self.config, lane, self.store, devices, self.ocr,
            ocr_executor=self.ocr_executor, metrics=self.metrics,
            devices_health=lambda: self.health.lane_devices(lane.id),
        )
        runner_box.append(runner)
        self.lanes[lane.id] = runner
        name = f"lane-{lane.id}"
        self.services += [
            Service(name, runner.run),
            Service(f"{name}-plc", plc.run),
            Service(f"{name}-rpm", monitor.run),
        ]
        if lane.rfid is not None:
            from rfid import ReaderSupervisor

            reader = ReaderSupervisor(
                f"lane {lane.id} reader", lane.rfid, on_read=runner.on_tag,
                on_health=report, lane=lane.id,
            )
            self.services.append(Service(f"{name}-rfid", reader.run))
        if lane.card_reader is not None:
            card_reader = CardReader(lane.id, lane.card_reader, runner.on_card, report)
            self.services.append(Service(f"{name}-card-reader", card_reader.run))
        if lane.scale is not None:
            scale = Scale(lane.id, lane.scale, runner.on_weight, report)
            self.services.append(Service(f"{name}-scale", scale.run))

    def _add_yard(self) -> None:
        if not self.config.yard.machines:
            return
        from gated.yard import YardGeometry, YardMoveService

        geometry = YardGeometry(self.config.yard.blocks)
        for machine in self.config.yard.machines:
            service = YardMoveService(
                self.config.site_id, machine, geometry, self.sessions,
                on_health=self.health.report,
            )
            self.services.append(Service(f"yard-{machine.id}", service.run))

    def _add_kiosk(self) -> None:
        from gated.kiosk import create_app
        from gated.kiosk.server import serve
        from gated.web import with_health_routes

        kiosk = create_app(
            self.config, self.sessions, GateEffects(self), self.board, metrics=self.metrics
        )
        app = with_health_routes(kiosk, self, self.config.kiosk.monitoring_from)
        self.services.append(
            Service("kiosk", lambda: serve(app, self.config.kiosk.host, self.config.kiosk.port))
        )

    # --- what the kiosk and /healthz show ---------------------------------------------------

    def board(self) -> list[dict[str, Any]]:
        lanes = []
        for lane_id, runner in self.lanes.items():
            entry = runner.board()
            entry["devices"] = [
                {"device": h.device, "up": h.up, "detail": h.detail}
                for h in self.health.lane_devices(lane_id)
            ]
            lanes.append(entry)
        return lanes

    def health_summary(self) -> dict[str, Any]:
        devices = self.health.all()
        return {
            "status": "ok" if all(h.up for h in devices) else "degraded",
            "started_at": self.started_at.isoformat(),
            "now": datetime.now().astimezone().isoformat(),
            "lanes": {
                lane: {
                    "state": runner.board()["state"],
                    "devices_down": [
                        h.device for h in self.health.lane_devices(lane) if not h.up
                    ],
                }
                for lane, runner in self.lanes.items()
            },
            "site_devices_down": [h.device for h in self.health.lane_devices(None) if not h.up],
        }

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self, install_signal_handlers: bool = True) -> None:
        self.supervisor = Supervisor(self.services)
        _LOGGER.info(
            "gate %s of site %s: starting %d services for %d lanes",
            self.config.gate_id, self.config.site_id, len(self.services), len(self.lanes),
        )
        try:
            await self.supervisor.run(install_signal_handlers=install_signal_handlers)
        finally:
            for closer in self._closers:
                try:
                    await closer.aclose()
                except Exception:
                    _LOGGER.exception("closing %s failed", closer)
            self.close()

    def stop(self) -> None:
        self.supervisor.stop()

    def close(self) -> None:
        self.ocr_executor.stop(deadline_s=1.0)
        self.engine.dispose()
