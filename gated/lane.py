"""One lane's state machine: from a truck at the loop to a resolved move.

Devices push inputs (`on_*` methods, called in the event loop's thread); the lane turns them
into one visit's evidence, decides with `gated.decision.decide`, and drives the barrier, lights
and printer. Inputs that fit no truck are recorded, never dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gated.config import LaneConfig, SiteConfig
from gated.decision import Evidence, decide
from gated.domain import (
    ContainerRead,
    CredentialCheck,
    Decision,
    DeviceHealth,
    FusedContainer,
    RadiationScan,
    Reason,
    TagRead,
    TransactionState,
    WeightReading,
    utcnow,
)
from gated.metrics import Metrics
from gated.ports import (
    BarrierPort,
    CapturePort,
    CredentialPort,
    MonitorPort,
    OcrPort,
    PlcInputs,
    PrinterPort,
)
from gated.tickets import gate_pass_lines, inspection_lines, instruction_lines
from gated.transactions import TransactionStore

_LOGGER = logging.getLogger(__name__)

TAG_LOOKBACK = timedelta(seconds=15)
SCAN_LOOKBACK = timedelta(seconds=60)


class SafetyRefusal(Exception):
    """The lane refuses to open the barrier: the reason says which safety check failed."""


@dataclass
class Visit:
    """The truck currently in the lane and the evidence gathered for it."""

    tx_id: int
    uuid: str
    opened_at: datetime
    opened_mono: float
    state: TransactionState = TransactionState.IDENTIFYING
    images_done: bool = False
    images_captured: int = 0
    reads: list[ContainerRead] = field(default_factory=list)
    fused: list[FusedContainer] = field(default_factory=list)
    tags: list[TagRead] = field(default_factory=list)
    scan: RadiationScan | None = None
    credential: CredentialCheck | None = None
    weight: WeightReading | None = None
    last_input_mono: float = 0.0
    exit_seen: bool = False
    leaving_mono: float = 0.0
    container_sensed: bool | None = None  # None until a presence sensor reports
    card: Any = None  # the presented card, in memory only (it holds the FASC-N)
    known_epcs: set[str] = field(default_factory=set)

    @property
    def truck_epc(self) -> str | None:
        """The truck's tag: a registered one if any was read, else the first read."""
        for tag in self.tags:
            if tag.epc in self.known_epcs:
                return tag.epc
        return self.tags[0].epc if self.tags else None
    container_count: int | None = None  # None until a profile scanner reports


@dataclass(frozen=True)
class LaneDevices:
    """The lane's devices; any may be absent (the decision then says what is missing)."""

    barrier: BarrierPort | None = None
    monitor: MonitorPort | None = None
    printer: PrinterPort | None = None
    cameras: CapturePort | None = None
    credentials: CredentialPort | None = None


class LaneRunner:
    def __init__(
        self,
        site: SiteConfig,
        lane: LaneConfig,
        store: TransactionStore,
        devices: LaneDevices,
        ocr: OcrPort | None,
        ocr_executor: Executor | None = None,
        metrics: Metrics | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        devices_health: Callable[[], list[DeviceHealth]] = list,
    ) -> None:
        self.site = site
        self.config = lane
        self.lane = lane.id
        self.store = store
        self.devices = devices
        self.ocr = ocr
        self._ocr_executor = ocr_executor
        self.metrics = metrics or Metrics()
        self._monotonic = monotonic
        self._devices_health = devices_health
        self._published_state: tuple[Any, ...] | None = None
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.visit: Visit | None = None
        self.plc = PlcInputs(entry_loop=False, exit_loop=False, photo_eye=False)
        self._recent_tags: deque[TagRead] = deque(maxlen=200)
        # tags of the last trucks: still read while they leave, never the next truck's
        self._claimed_epcs: deque[str] = deque(maxlen=16)
        self._last_closed_at: datetime | None = None
        self._pending_scans: deque[RadiationScan] = deque(maxlen=10)
        self._tasks: set[asyncio.Task[None]] = set()
        self.decided = asyncio.Event()
        self.last_decision: Decision | None = None

    # --- inputs (called by device adapters in the loop thread) -----------------------------

    def on_plc(self, inputs: PlcInputs) -> None:
        self._inbox.put_nowait(("plc", inputs))

    def on_occupancy(self) -> None:
        self._inbox.put_nowait(("occupancy", None))

    def on_scan(self, scan: RadiationScan) -> None:
        self._inbox.put_nowait(("scan", scan))

    def on_tag(self, tag: TagRead) -> None:
        self._inbox.put_nowait(("tag", tag))

    def on_card(self, card: Any) -> None:
        self._inbox.put_nowait(("card", card))

    def on_weight(self, weight: WeightReading) -> None:
        self._inbox.put_nowait(("weight", weight))

    async def direct_to_inspection(self, tx_id: int) -> None:
        """A clerk sent the waiting truck to secondary inspection (recorded by the kiosk)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inbox.put_nowait(("inspect", (tx_id, future)))
        await future

    async def rerun_ocr(self, tx_id: int) -> None:
        """Read the transaction's stored images again; the new reads replace the old ones."""
        tx = self.store.load(tx_id)
        if self.ocr is None:
            raise RuntimeError(f"lane {self.lane}: no OCR configured")
        reads, fused = await self._read_pictures(
            self.ocr, [(read.image_path, read.camera) for read in tx.reads]
        )
        self.store.add_reads(tx_id, reads, fused, replace=True)
        visit = self.visit
        if visit is not None and visit.tx_id == tx_id:
            visit.reads, visit.fused = reads, fused

    async def _read_pictures(
        self, ocr: OcrPort, pictures: list[tuple[str, str | None]]
    ) -> tuple[list[ContainerRead], list[FusedContainer]]:
        """Read a visit's pictures (path, camera) in the OCR workers and fuse them; the reads
        come back as shown and stored (see `_shown`), the fusion from all of them."""
        started = self._monotonic()
        reads = list(await asyncio.gather(
            *(self._read_image(ocr, path, camera) for path, camera in pictures)
        ))
        for read in reads:
            self.metrics.observe("gated_ocr_seconds", read.elapsed_ms / 1000.0)
        fused = ocr.fuse(reads)
        _LOGGER.debug("lane %s: OCR of %d images in %.2f s", self.lane, len(reads),
                      self._monotonic() - started)
        return self._shown(reads), fused

    async def _read_image(self, ocr: OcrPort, path: str, camera: str | None) -> ContainerRead:
        """One picture read in the OCR workers; a failure of the workers themselves becomes
        that picture's error, so the visit is decided (the clerk sees why) instead of waiting
        for its identify timeout."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._ocr_executor, ocr.read, path, camera)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _LOGGER.error("lane %s: OCR of %s (camera %s) failed: %s: %s",
                          self.lane, path, camera, type(exc).__name__, exc)
            self.metrics.inc("gated_ocr_failures_total", lane=self.lane)
            return ContainerRead(
                image=path, camera=camera, container_number=None, size_type=None,
                confidence=0.0, error=f"OCR failed: {type(exc).__name__}: {exc}"[:500],
            )

    def _shown(self, reads: list[ContainerRead]) -> list[ContainerRead]:
        """Per image, a number is kept only at the site's threshold; a doubtful one has voted
        in the fusion but is not shown or stored as a reading of that image."""
        threshold = self.site.ocr.min_confidence
        return [
            read if read.confidence >= threshold
            else dataclasses.replace(read, container_number=None, size_type=None)
            for read in reads
        ]

    def release(self, tx_id: int, future: asyncio.Future[None]) -> None:
        """A clerk approved the waiting transaction: open the barrier (safety permitting)."""
        self._inbox.put_nowait(("release", (tx_id, future)))

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        self._recover()
        try:
            while True:
                timeout = self._next_deadline()
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                    # that meets an input, and the lane would not stop
                    async with asyncio.timeout(timeout):
                        kind, value = await self._inbox.get()
                except TimeoutError:
                    kind, value = "tick", None
                await self._handle(kind, value)
                await self._maybe_decide()
                self._publish_state()
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def _recover(self) -> None:
        """After a restart nothing is lost or redone: a visit that was being identified goes to
        a clerk as interrupted; one waiting for a clerk stays in the queue (the lane does not
        hold it: the truck may be gone); a truck let through is watched until it has left."""
        for tx_id, tx_uuid, state in self.store.unfinished(self.lane):
            if state in (TransactionState.IDENTIFYING, TransactionState.ARRIVING,
                         TransactionState.DECIDING, TransactionState.PROCEED):
                # PROCEED: decided, but the barrier was not seen open: a clerk decides again
                _LOGGER.warning("lane %s: transaction %s interrupted by a restart", self.lane,
                                tx_uuid)
                self.store.set_state(
                    tx_id, TransactionState.TROUBLE,
                    Reason("interrupted", "interrupted: the daemon restarted during this visit"),
                )
            elif state == TransactionState.LEAVING:
                if self.visit is not None:
                    # one truck at a time passes the barrier: an older one has long gone
                    self.store.set_state(
                        self.visit.tx_id, TransactionState.CLOSED,
                        Reason("superseded", "closed at restart: a later truck was let through",
                               blocking=False),
                    )
                self.visit = Visit(tx_id, tx_uuid, utcnow(), self._monotonic(),
                                   state=TransactionState.LEAVING, images_done=True,
                                   leaving_mono=self._monotonic())

    def _next_deadline(self) -> float | None:
        visit = self.visit
        if visit is not None and visit.state is TransactionState.LEAVING:
            ends = visit.leaving_mono + self.config.timeouts.leave_s
            return max(0.01, ends - self._monotonic())
        if visit is None or visit.state is not TransactionState.IDENTIFYING:
            return None
        now = self._monotonic()
        deadlines = [d for d in self._deadlines(visit) if d > now]
        return max(0.01, min(deadlines) - now) if deadlines else 0.01

    def _deadlines(self, visit: Visit) -> list[float]:
        t = self.config.timeouts
        return [
            visit.opened_mono + t.identify_s,
            visit.opened_mono + t.scan_s,
            visit.opened_mono + t.credential_s,
        ]

    async def _handle(self, kind: str, value: Any) -> None:
        handler = {
            "plc": self._on_plc,
            "occupancy": self._on_occupancy,
            "scan": self._on_scan,
            "tag": self._on_tag,
            "card": self._on_card,
            "weight": self._on_weight,
            "images": self._on_images,
            "release": self._on_release,
            "inspect": self._on_inspect,
            "tick": None,
        }.get(kind)
        if handler is None:
            return
        try:
            await handler(value)
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("lane %s: failed to handle %s input", self.lane, kind)
            self.metrics.inc("gated_lane_input_errors_total", lane=self.lane, input=kind)

    # --- arrival and evidence --------------------------------------------------------------

    async def _open_visit(self, trigger: str) -> None:
        now = utcnow()
        tx_id, tx_uuid = self.store.open(self.lane, self.config.direction, now)
        visit = Visit(tx_id, tx_uuid, now, self._monotonic())
        self.visit = visit
        self.decided.clear()
        _LOGGER.info("lane %s: truck arrived (%s), transaction %s", self.lane, trigger, tx_uuid)
        cutoff = now - TAG_LOOKBACK
        if self._last_closed_at is not None:
            cutoff = max(cutoff, self._last_closed_at)
        for tag in self._recent_tags:
            if _tag_time(tag) >= cutoff and tag.epc not in self._claimed_epcs \
                    and all(t.epc != tag.epc for t in visit.tags):
                await self._attach_tag(visit, tag)
        while self._pending_scans:
            scan = self._pending_scans.popleft()
            # only an occupancy that began after the last truck left can be this truck's
            recent = scan.ended_at is None or scan.ended_at >= now - SCAN_LOOKBACK
            after_last = self._last_closed_at is None or scan.started_at >= self._last_closed_at
            if recent and after_last:
                visit.scan = worst_scan(visit.scan, scan)
                self.store.add_scan(tx_id, scan)
        self._spawn(self._capture(visit), f"lane-{self.lane}-capture-{tx_id}")
        if self.devices.barrier is not None:
            await self._safely(self.devices.barrier.set_light("red"), "set light red")

    async def _on_plc(self, inputs: PlcInputs) -> None:
        previous, self.plc = self.plc, inputs
        visit = self.visit
        if inputs.entry_loop and not previous.entry_loop and visit is None:
            await self._open_visit("entry loop")
            visit = self.visit
        if visit is None:
            if (inputs.exit_loop or inputs.photo_eye) and not (
                previous.exit_loop or previous.photo_eye
            ):
                # something passed the barrier with no truck let through: a tailgater
                _LOGGER.warning("lane %s: exit loop busy with no truck let through", self.lane)
                self.store.record_unmatched(
                    self.lane, "exit_without_visit",
                    {"exit_loop": inputs.exit_loop, "photo_eye": inputs.photo_eye},
                )
            return
        if visit.state is TransactionState.IDENTIFYING:
            if inputs.container_present is not None:
                visit.container_sensed = bool(visit.container_sensed) or inputs.container_present
            if inputs.container_count is not None:
                visit.container_count = max(visit.container_count or 0, inputs.container_count)
                visit.container_sensed = bool(visit.container_sensed) or inputs.container_count > 0
        if visit.state is TransactionState.LEAVING:
            if inputs.exit_loop:
                visit.exit_seen = True
            if visit.exit_seen and not inputs.exit_loop and not inputs.photo_eye:
                await self._close_after_exit(visit)
        elif visit.state in (TransactionState.TROUBLE, TransactionState.INSPECTION):
            if previous.entry_loop and not inputs.entry_loop and not inputs.exit_loop:
                self.store.set_state(
                    visit.tx_id, TransactionState.CLOSED,
                    Reason("left_lane", "truck left the lane without passing the barrier",
                           blocking=False),
                )
                _LOGGER.info("lane %s: truck of %s left the lane", self.lane, visit.uuid)
                self._forget(visit)

    async def _leave_timed_out(self, visit: Visit) -> None:
        """The truck let through was not seen leaving: close the barrier (the PLC's interlock
        keeps it open while the photo-eye or the exit loop is busy) and free the lane."""
        _LOGGER.warning("lane %s: truck of %s not seen leaving within %.0f s", self.lane,
                        visit.uuid, self.config.timeouts.leave_s)
        if self.devices.barrier is not None:
            await self._safely(self.devices.barrier.close_barrier(), "close barrier")
            await self._safely(self.devices.barrier.set_light("red"), "set light red")
        self.store.set_state(
            visit.tx_id, TransactionState.CLOSED,
            Reason("leave_timeout", "the truck was not seen on the exit loop after the "
                   "barrier opened", blocking=False),
        )
        self._forget(visit)

    async def _close_after_exit(self, visit: Visit) -> None:
        if self.devices.barrier is not None:
            await self._safely(self.devices.barrier.close_barrier(), "close barrier")
            await self._safely(self.devices.barrier.set_light("red"), "set light red")
        self.store.set_state(visit.tx_id, TransactionState.CLOSED)
        _LOGGER.info("lane %s: transaction %s closed, truck passed", self.lane, visit.uuid)
        self._forget(visit)

    def _forget(self, visit: Visit) -> None:
        """The truck is gone: its tags are not evidence for the next truck."""
        self._claimed_epcs.extend(t.epc for t in visit.tags)
        self._last_closed_at = utcnow()
        self.visit = None

    async def _on_occupancy(self, _: None) -> None:
        if self.visit is None:
            await self._open_visit("radiation portal occupancy")

    async def _on_scan(self, scan: RadiationScan) -> None:
        visit = self.visit
        if visit is not None and visit.state is TransactionState.IDENTIFYING:
            second = visit.scan is not None
            # fail closed: every occupancy during the visit counts, the worst one decides
            visit.scan = worst_scan(visit.scan, scan)
            visit.last_input_mono = self._monotonic()
            self.store.add_scan(visit.tx_id, scan)
            if not second:
                return
        # the scan of the next truck, already through the portal while this one leaves
        self._pending_scans.append(scan)
        if visit is None or visit.state is not TransactionState.IDENTIFYING:
            self.store.add_scan(None, scan)

    async def _attach_tag(self, visit: Visit, tag: TagRead) -> None:
        known, _ = self._truck_known(tag.epc)
        visit.tags.append(tag)
        if known:
            visit.known_epcs.add(tag.epc)
        visit.last_input_mono = self._monotonic()
        self.store.add_tag(visit.tx_id, self.lane, tag, known)

    def _truck_known(self, epc: str) -> tuple[bool, str | None]:
        truck = self.store.truck(epc)
        return (truck is not None and truck.known), (truck.company_code if truck else None)

    async def _on_tag(self, tag: TagRead) -> None:
        self._recent_tags.append(tag)
        visit = self.visit
        if visit is not None and visit.state is TransactionState.IDENTIFYING \
                and tag.epc not in self._claimed_epcs:
            if all(t.epc != tag.epc for t in visit.tags):
                await self._attach_tag(visit, tag)
            return
        known, _ = self._truck_known(tag.epc)
        self.store.add_tag(None, self.lane, tag, known)

    async def _on_card(self, card: Any) -> None:
        """A card at the pedestal. It is checked when the lane decides, once the truck (and so
        the trucking company the driver must drive for) is known; it stays in memory only."""
        visit = self.visit
        checker = self.devices.credentials
        if checker is None:
            return
        if visit is None or visit.state not in (
            TransactionState.IDENTIFYING, TransactionState.TROUBLE
        ):
            check = await self._check_card(card, None)
            self.store.add_credential(None, self.lane, check)
            self.store.record_unmatched(
                self.lane, "credential", {"valid": check.valid, "last4": check.credential_last4}
            )
            return
        visit.card = card
        visit.credential = None
        visit.last_input_mono = self._monotonic()
        if visit.state is TransactionState.TROUBLE:
            # the driver tried again at the pedestal: decide afresh with the new credential
            visit.state = TransactionState.IDENTIFYING
            self.store.set_state(visit.tx_id, TransactionState.IDENTIFYING)

    async def _check_card(self, card: Any, company: str | None) -> CredentialCheck:
        checker = self.devices.credentials
        assert checker is not None
        return await asyncio.to_thread(self.store.with_session, checker.check, card, company)

    async def _on_weight(self, weight: WeightReading) -> None:
        visit = self.visit
        scale = self.config.scale
        if not weight.stable or (scale is not None and weight.gross_kg < scale.min_gross_kg):
            return  # moving, or an empty scale: not a truck's weight
        if visit is None or visit.state is not TransactionState.IDENTIFYING:
            self.store.record_unmatched(self.lane, "weight", {"gross_kg": weight.gross_kg})
            return
        visit.weight = weight
        visit.last_input_mono = self._monotonic()
        self.store.set_weight(visit.tx_id, weight)

    async def _capture(self, visit: Visit) -> None:
        reads: list[ContainerRead] = []
        fused: list[FusedContainer] = []
        captured = 0
        captured_mono = self._monotonic()
        if self.devices.cameras is not None:
            images = await self.devices.cameras.capture(visit.uuid)
            # the cameras' input is the pictures, not the end of OCR: OCR time counts in the
            # decision latency
            captured_mono = self._monotonic()
            captured = sum(1 for i in images if i.path)
            if self.ocr is not None:
                reads, fused = await self._read_pictures(
                    self.ocr, [(image.path, image.camera) for image in images if image.path]
                )
        self._inbox.put_nowait(("images", (visit.tx_id, reads, fused, captured, captured_mono)))

    async def _on_images(
        self, value: tuple[int, list[ContainerRead], list[FusedContainer], int, float]
    ) -> None:
        tx_id, reads, fused, captured, captured_mono = value
        visit = self.visit
        self.store.add_reads(tx_id, reads, fused)
        if visit is None or visit.tx_id != tx_id:
            return
        visit.reads, visit.fused, visit.images_captured = reads, fused, captured
        visit.images_done = True
        visit.last_input_mono = max(visit.last_input_mono, captured_mono)

    # --- deciding --------------------------------------------------------------------------

    def _ready(self, visit: Visit) -> bool:
        now = self._monotonic()
        t = self.config.timeouts
        identify_over = now >= visit.opened_mono + t.identify_s
        have = {
            "images": visit.images_done,
            "tag": bool(visit.tags) or self.config.rfid is None,
            "weight": visit.weight is not None or self.config.scale is None,
        }
        scan_ok = visit.scan is not None or now >= visit.opened_mono + t.scan_s
        credential_ok = (
            visit.card is not None
            or self.config.card_reader is None
            or now >= visit.opened_mono + t.credential_s
        )
        return scan_ok and credential_ok and (all(have.values()) or identify_over)

    async def _maybe_decide(self) -> None:
        visit = self.visit
        if visit is not None and visit.state is TransactionState.LEAVING \
                and self._monotonic() >= visit.leaving_mono + self.config.timeouts.leave_s:
            await self._leave_timed_out(visit)
            return
        if visit is None or visit.state is not TransactionState.IDENTIFYING:
            return
        if not self._ready(visit):
            return
        await self._decide(visit)

    def _evidence(self, visit: Visit) -> tuple[Evidence, Any, Any]:
        numbers = [c.container_number for c in visit.fused]
        epc = visit.truck_epc
        truck, appointments, holds = self.store.tos_facts(numbers, epc)
        monitor = self.devices.monitor
        barrier = self.devices.barrier
        rpm_problem = "no radiation monitor connected" if monitor is None else monitor.problem
        unreadable_seen = any(
            r.container_number is None and r.region is not None and r.error is None
            for r in visit.reads
        ) and not visit.fused
        evidence = Evidence(
            lane_direction=self.config.direction,
            at=utcnow(),
            containers=tuple(visit.fused),
            unreadable_container_seen=unreadable_seen,
            container_sensed=visit.container_sensed,
            container_count=visit.container_count,
            images_captured=visit.images_captured,
            images_pending=not visit.images_done,
            truck=truck,
            scan=visit.scan,
            rpm_problem=rpm_problem,
            credential=visit.credential,
            credential_reader=self.config.card_reader is not None,
            weight=visit.weight,
            scale_configured=self.config.scale is not None,
            max_gross_kg=self.config.scale.max_gross_kg if self.config.scale else None,
            min_gross_kg=self.config.scale.min_gross_kg if self.config.scale else None,
            plc_problem=("no PLC connected" if barrier is None else barrier.problem),
            appointments=appointments,
            holds=holds,
            min_confidence=self.site.ocr.min_confidence,
        )
        return evidence, appointments, truck

    async def _decide(self, visit: Visit) -> None:
        if visit.card is not None and visit.credential is None:
            epc = visit.truck_epc
            truck_fact = self.store.truck(epc)
            company = truck_fact.company_code if truck_fact else None
            visit.credential = await self._check_card(visit.card, company)
            visit.card = None  # checked: the FASC-N is not kept longer than needed
            self.store.add_credential(visit.tx_id, self.lane, visit.credential)
        evidence, appointments, truck = self._evidence(visit)
        result = decide(evidence)
        latency = self._monotonic() - (visit.last_input_mono or visit.opened_mono)
        self.metrics.observe("gated_decision_latency_seconds", max(0.0, latency))
        self.metrics.inc("gated_transactions_total", lane=self.lane, decision=result.decision)
        tx = self.store.decide(visit.tx_id, result, evidence.at, appointments, truck)
        visit.state = TransactionState(tx.state)
        self.last_decision = result.decision
        _LOGGER.info(
            "lane %s: %s for %s, %.3f s after the last input: %s", self.lane, result.decision,
            visit.uuid, latency,
            "; ".join(r.text for r in result.reasons if r.blocking) or "all checks passed",
        )
        if result.decision is Decision.PROCEED:
            await self._let_through(visit)
        elif result.decision is Decision.INSPECTION:
            await self._print(visit.tx_id, "SECONDARY INSPECTION", inspection_lines)
        self.decided.set()

    async def _let_through(self, visit: Visit) -> None:
        barrier = self.devices.barrier
        if barrier is None:
            return
        try:
            await barrier.open_barrier()
            await barrier.set_light("green")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _LOGGER.error("lane %s: barrier did not open for %s: %s", self.lane, visit.uuid, exc)
            self.store.set_state(
                visit.tx_id, TransactionState.TROUBLE,
                Reason("barrier_failed", f"barrier did not open: {exc}"),
            )
            visit.state = TransactionState.TROUBLE
            return
        self.store.set_state(visit.tx_id, TransactionState.LEAVING)
        visit.state = TransactionState.LEAVING
        visit.leaving_mono = self._monotonic()
        await self._print(visit.tx_id, "GATE PASS", gate_pass_lines)
        await self._print(visit.tx_id, "INSTRUCTIONS", instruction_lines)

    async def _on_release(self, value: tuple[int, asyncio.Future[None]]) -> None:
        tx_id, future = value
        try:
            visit = self.visit
            if visit is None or visit.tx_id != tx_id:
                raise SafetyRefusal("this truck is no longer at the barrier of the lane")
            self.check_release_safety(tx_id)
            await self._let_through(visit)
            if visit.state is not TransactionState.LEAVING:
                raise SafetyRefusal("the barrier did not open")
        except Exception as exc:  # handed to the clerk's request
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(None)

    async def _on_inspect(self, value: tuple[int, asyncio.Future[None]]) -> None:
        tx_id, future = value
        visit = self.visit
        if visit is not None and visit.tx_id == tx_id:
            visit.state = TransactionState.INSPECTION
        if self.devices.barrier is not None:
            await self._safely(self.devices.barrier.set_light("red"), "set light red")
        await self._print(tx_id, "SECONDARY INSPECTION", inspection_lines)
        if not future.done():
            future.set_result(None)

    def check_release_safety(self, tx_id: int) -> None:
        """Fail closed: a clerk may not open the barrier without a clean scan and a valid
        credential of this visit."""
        tx = self.store.load(tx_id)
        scan = tx.scans[-1] if tx.scans else None
        if scan is None or not scan.complete or scan.faults:
            raise SafetyRefusal("no complete radiation scan of this truck")
        if scan.gamma_alarm or scan.neutron_alarm or scan.monitor_gamma_alarm \
                or scan.monitor_neutron_alarm:
            raise SafetyRefusal("radiation alarm: only secondary inspection can clear this truck")
        if self.devices.monitor is not None and self.devices.monitor.problem:
            raise SafetyRefusal(f"radiation monitor not trusted: {self.devices.monitor.problem}")
        if not any(c.valid for c in tx.credential_checks):
            raise SafetyRefusal("no valid credential presented for this visit")

    # --- effects ---------------------------------------------------------------------------

    async def _print(self, tx_id: int, title: str, render: Callable[..., list[str]]) -> None:
        printer = self.devices.printer
        if printer is None:
            return
        tx = self.store.load(tx_id)
        width = self.config.printer.width_chars if self.config.printer else 42
        await self._safely(printer.print_ticket(render(tx, width), title), f"print {title}")

    async def print_tickets(self, tx_id: int) -> None:
        await self._print(tx_id, "GATE PASS", gate_pass_lines)
        await self._print(tx_id, "INSTRUCTIONS", instruction_lines)

    async def _safely(self, action: Any, what: str) -> None:
        try:
            await action
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _LOGGER.error("lane %s: %s failed: %s", self.lane, what, exc)

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _publish_state(self) -> None:
        """Queue the lane's retained state for the TOS when it changed."""
        visit = self.visit
        state = visit.state.value if visit else "idle"
        devices = self._devices_health()
        key = (state, visit.uuid if visit else None, tuple((d.device, d.up) for d in devices))
        if key == self._published_state:
            return
        self._published_state = key
        down = [d.device for d in devices if not d.up]
        detail = f"down: {', '.join(down)}" if down else ""
        try:
            self.store.lane_state(self.lane, state, key[1], devices, detail)
        except Exception:
            self._published_state = None  # try again after the next input
            _LOGGER.exception("lane %s: could not queue the lane state", self.lane)

    def board(self) -> dict[str, Any]:
        """The lane as the kiosk board shows it."""
        visit = self.visit
        return {
            "lane": self.lane,
            "direction": self.config.direction,
            "state": visit.state.value if visit else "idle",
            "transaction_id": visit.tx_id if visit else None,
            "transaction_uuid": visit.uuid if visit else None,
            "truck": visit.truck_epc if visit else None,
            "containers": [c.container_number for c in visit.fused] if visit else [],
            "entry_loop": self.plc.entry_loop,
            "exit_loop": self.plc.exit_loop,
            "last_decision": self.last_decision.value if self.last_decision else None,
        }


def _tag_time(tag: TagRead) -> datetime:
    """When a tag was seen: the reader's own time when it is sane (a report buffered during an
    outage arrives late but says when it was read), else the host's arrival time."""
    return tag.reader_time or tag.seen_at


def _scan_rank(scan: RadiationScan) -> int:
    if scan.alarm:
        return 3
    if not scan.complete or scan.faults:
        return 2
    return 1


def worst_scan(current: RadiationScan | None, new: RadiationScan) -> RadiationScan:
    """Of two scans of one visit, the one that lets the truck through least."""
    if current is None or _scan_rank(new) > _scan_rank(current):
        return new
    return current
