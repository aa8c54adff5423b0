"""`gated run`: wire the configured subsystems together and supervise them."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine

from gated.config import LaneConfig, SiteConfig
from gated.db import make_engine, session_factory, upgrade
from gated.health import HealthBoard
from gated.lane import LaneDevices, LaneRunner
from gated.metrics import Metrics
from gated.supervisor import Service, Supervisor
from gated.transactions import TransactionStore

_LOGGER = logging.getLogger(__name__)


class Daemon:
    """Everything `gated run` starts for one gate complex."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.engine: Engine = make_engine(config.database.url)
        upgrade(self.engine)
        self.sessions = session_factory(self.engine)
        self.health = HealthBoard()
        self.metrics = Metrics()
        self.health.subscribe(self._count_health)
        self.ocr_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ocr")
        self.lanes: dict[str, LaneRunner] = {}
        self.services: list[Service] = []
        for lane in config.lanes:
            self._add_lane(lane)

    def _count_health(self, health: Any) -> None:
        self.metrics.set(
            "gated_device_up", 1.0 if health.up else 0.0,
            lane=health.lane or "", device=health.device,
        )

    def _add_lane(self, lane: LaneConfig) -> None:
        store = TransactionStore(self.sessions, self.config.site_id, self.config.gate_id)
        devices = LaneDevices()
        runner = LaneRunner(
            self.config, lane, store, devices, ocr=None,
            ocr_executor=self.ocr_executor, metrics=self.metrics,
        )
        self.lanes[lane.id] = runner
        self.services.append(Service(f"lane-{lane.id}", runner.run))

    async def run(self, install_signal_handlers: bool = True) -> None:
        supervisor = Supervisor(self.services)
        self.supervisor = supervisor
        _LOGGER.info(
            "gate %s of site %s: starting %d services for %d lanes",
            self.config.gate_id, self.config.site_id, len(self.services), len(self.lanes),
        )
        try:
            await supervisor.run(install_signal_handlers=install_signal_handlers)
        finally:
            self.close()

    def stop(self) -> None:
        self.supervisor.stop()

    def close(self) -> None:
        self.ocr_executor.shutdown(wait=True, cancel_futures=True)
        self.engine.dispose()
