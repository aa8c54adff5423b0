"""The TOS bridge: drains the outbox to MQTT, takes TOS commands in, resends unacknowledged moves.

Three threads cooperate. paho's network thread only queues what it hears (broker acks by
message id, inbound commands) and wakes the worker. The worker thread owns the database side:
it marks outbox rows published when their broker ack arrives, applies commands, publishes the
next rows in id order and resends moves the TOS has not acknowledged. `run()` on the asyncio
loop starts and stops the two and reports the broker's health.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gated import outbox
from gated.config import SiteConfig
from gated.domain import DeviceHealth, utcnow
from gated.models import Move, OutboxEvent
from tos_bridge import mqtt
from tos_bridge.commands import AckCommand, CommandRejected, parse_command
from tos_bridge.store import apply_acks, apply_command

_LOGGER = logging.getLogger(__name__)

PUBLISH_WINDOW = 1000  # outbox rows handed to paho and not yet acknowledged by the broker
IDLE_POLL_S = 0.05  # how often the worker looks for rows written by other processes
SWEEP_S = 5.0  # how often rows skipped by a late commit are looked for
PRUNE_S = 300.0
STOP_GRACE_S = 2.0  # a clean stop waits this long for outstanding broker acks
DB_RETRY_CAP_S = 10.0
CHUNK = 500
RESEND_MIN = 100  # moves resent per round however few acks the TOS managed
RESEND_BACKOFF_CAP = 4  # the n-th resend waits at most 2**4 ack timeouts


@dataclass
class BridgeCounters:
    """What the bridge did since it started, for /metrics."""

    published: int = 0  # outbox events the broker acknowledged
    resent: int = 0  # moves sent again because the TOS had not acknowledged them
    acked: int = 0  # moves the TOS acknowledged
    commands: int = 0  # TOS commands applied
    bad_commands: int = 0  # TOS commands refused and answered on tos/errors
    publish_refused: int = 0  # publishes the broker acknowledged with an error code
    connects: int = 0
    connected: int = 0


@dataclass(frozen=True)
class _Sent:
    kind: str  # outbox, resend, direct
    row_id: int
    event_id: str
    topic: str


@dataclass(frozen=True)
class _Inbound:
    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes


class TosBridge:
    """One site's MQTT link to the TOS. `await run()` until cancelled."""

    def __init__(
        self,
        config: SiteConfig,
        session_factory: sessionmaker[Session],
        on_health: Callable[[DeviceHealth], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._sessions = session_factory
        self._on_health = on_health
        self._clock = clock
        self._topics = mqtt.Topics(config)
        self._device = f"mqtt {config.mqtt.host}:{config.mqtt.port}"
        self._ack_timeout = timedelta(seconds=config.mqtt.tos_ack_timeout_s)
        self._resend_every = min(max(config.mqtt.tos_ack_timeout_s / 4, 0.05), 2.0)
        self.counters = BridgeCounters()

        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._generation = 0
        self._broker_acks: deque[tuple[int, bool]] = deque()
        self._inbound: deque[_Inbound] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Client | None = None

        # owned by the worker thread
        self._sent: dict[int, _Sent] = {}
        self._outstanding: set[int] = set()  # outbox row ids handed to paho, not yet acked
        self._resending: set[str] = set()
        self._cursor = 0
        self._retry_from: int | None = None
        self._retry_at = 0.0
        self._refused_logged = False
        self._resend_logged = False
        self._acks_since_resend = 0

    # --- public ---------------------------------------------------------------------------

    def wake(self) -> None:
        """New rows are committed: look at the outbox now (safe from any thread)."""
        self._wake.set()

    @property
    def ready(self) -> bool:
        """Connected and subscribed to the TOS commands."""
        return self._connected.is_set() and self._subscribed.is_set()

    def metrics(self) -> dict[str, int]:
        return asdict(self.counters)

    async def run(self) -> None:
        """Connect, drain and listen until cancelled; a clean stop publishes `offline`."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop.clear()
        finished: asyncio.Future[None] = loop.create_future()
        remove_hook = outbox.on_commit(self.wake)
        worker = threading.Thread(
            target=self._thread_main,
            args=(finished,),
            name=f"tos-bridge-{self._config.site_id}",
            daemon=True,
        )
        worker.start()
        try:
            await asyncio.shield(finished)
        finally:
            self._stop.set()
            self._wake.set()
            try:
                if not finished.done():
                    await finished  # the worker's clean stop: last acks, `offline`, disconnect
            finally:
                if finished.done() and not finished.cancelled():
                    finished.exception()  # already raised above if it mattered
                worker.join(timeout=STOP_GRACE_S * 2)
                remove_hook()

    # --- paho's thread: record and wake ---------------------------------------------------

    def _on_connect(
        self,
        client: Client,
        _userdata: Any,
        _flags: ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            _LOGGER.warning("%s: broker refused the connection: %s", self._device, reason_code)
            return
        self._generation += 1
        self.counters.connects += 1
        self.counters.connected = 1
        client.publish(self._topics.availability, mqtt.ONLINE, qos=1, retain=True)
        if mqtt.is_v5(self._config):
            options = SubscribeOptions(qos=1, noLocal=True)
            client.subscribe(self._topics.tos_filter, options=options)
        else:
            client.subscribe(self._topics.tos_filter, qos=1)
        if self.counters.connects == 1:
            _LOGGER.info("%s: connected, site %s online", self._device, self._config.site_id)
        else:
            _LOGGER.info("%s: broker recovered, reconnected", self._device)
        self._connected.set()
        self._health(True, "connected")
        self._wake.set()

    def _on_disconnect(
        self,
        _client: Client,
        _userdata: Any,
        _flags: DisconnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._subscribed.clear()
        self.counters.connected = 0
        if was_connected and not self._stop.is_set():
            _LOGGER.warning(
                "%s: broker lost (%s), reconnecting with back-off up to %d s",
                self._device,
                reason_code,
                self._config.mqtt.reconnect_max_s,
            )
            self._health(False, f"lost: {reason_code}")

    def _on_subscribe(
        self,
        _client: Client,
        _userdata: Any,
        _mid: int,
        reason_codes: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        if any(code.is_failure for code in reason_codes):
            _LOGGER.error(
                "%s: broker refused the subscription to %s: %s",
                self._device,
                self._topics.tos_filter,
                reason_codes,
            )
            return
        self._subscribed.set()

    def _on_publish(
        self,
        _client: Client,
        _userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self._broker_acks.append((mid, bool(reason_code.is_failure)))
        self._wake.set()

    def _on_message(self, _client: Client, _userdata: Any, message: MQTTMessage) -> None:
        self._inbound.append(
            _Inbound(
                self._generation, message.mid, message.qos, message.topic, bytes(message.payload)
            )
        )
        self._wake.set()

    def _health(self, up: bool, detail: str) -> None:
        if self._on_health is None or self._loop is None:
            return
        health = DeviceHealth(lane=None, device=self._device, up=up, detail=detail)
        try:
            self._loop.call_soon_threadsafe(self._on_health, health)
        except RuntimeError:  # the loop closed while we were stopping
            pass

    # --- the worker thread ----------------------------------------------------------------

    def _thread_main(self, finished: asyncio.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        error: BaseException | None = None
        try:
            self._work()
        except BaseException as exc:  # reported to run(), which raises it
            _LOGGER.exception("site %s: TOS bridge worker failed", self._config.site_id)
            error = exc

        def settle() -> None:
            if finished.done():
                return
            if error is None:
                finished.set_result(None)
            else:
                finished.set_exception(error)

        try:
            loop.call_soon_threadsafe(settle)
        except RuntimeError:
            pass

    def _work(self) -> None:
        client = mqtt.build_client(self._config, self._topics)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        settings = self._config.mqtt
        client.connect_async(
            settings.host,
            settings.port,
            keepalive=settings.keepalive_s,
            clean_start=False,
            properties=mqtt.connect_properties(self._config),
        )
        client.loop_start()
        try:
            self._serve()
        finally:
            self._shutdown(client)

    def _serve(self) -> None:
        next_resend = next_sweep = next_prune = 0.0
        db_failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                busy = self._step()
                now = time.monotonic()
                if now >= next_resend:
                    busy += self._resend_due()
                    next_resend = now + self._resend_every
                if now >= next_sweep:
                    self._sweep_skipped()
                    next_sweep = now + SWEEP_S
                if now >= next_prune:
                    self._prune()
                    next_prune = now + PRUNE_S
            except SQLAlchemyError as exc:
                db_failures += 1
                delay = min(0.1 * 2**db_failures, DB_RETRY_CAP_S)
                if db_failures == 1:
                    _LOGGER.error(
                        "site %s: database unavailable to the TOS bridge (%s), retrying",
                        self._config.site_id,
                        exc.__class__.__name__,
                    )
                self._stop.wait(delay)
                continue
            if db_failures:
                _LOGGER.info("site %s: TOS bridge database recovered", self._config.site_id)
                db_failures = 0
            if not busy:
                self._wake.wait(IDLE_POLL_S)

    def _step(self) -> int:
        busy = self._mark_broker_acks()
        busy += self._handle_inbound()
        if self._connected.is_set():
            busy += self._publish_pending()
        return busy

    def _shutdown(self, client: Client) -> None:
        deadline = time.monotonic() + STOP_GRACE_S
        try:
            while self._outstanding and self._connected.is_set() and time.monotonic() < deadline:
                self._mark_broker_acks()
                self._wake.wait(0.02)
                self._wake.clear()
            if self._connected.is_set():
                info = client.publish(self._topics.availability, mqtt.OFFLINE, qos=1, retain=True)
                info.wait_for_publish(max(deadline - time.monotonic(), 0.5))
            self._mark_broker_acks()
        except (SQLAlchemyError, RuntimeError, ValueError) as exc:
            _LOGGER.warning(
                "site %s: unclean TOS bridge stop: %s", self._config.site_id, str(exc)
            )
        finally:
            client.disconnect()
            client.loop_stop()
            self._client = None  # paho closes its wake-up socket pair when collected
            self._connected.clear()
            self.counters.connected = 0
            _LOGGER.info("%s: disconnected, site %s offline", self._device, self._config.site_id)

    # --- publishing ------------------------------------------------------------------------

    def _publish(self, sent: _Sent, payload: str | bytes, retain: bool) -> bool:
        """Hand one message to paho; False when paho will not take more."""
        client = self._client
        assert client is not None
        info = client.publish(
            self._topics.full(sent.topic),
            payload,
            qos=1,
            retain=retain,
            properties=mqtt.event_properties(self._config, sent.event_id),
        )
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            _LOGGER.warning("%s: paho refused a publish: %s", self._device, info.rc)
            return False
        self._sent[info.mid] = sent
        return True

    def _publish_pending(self) -> int:
        if self._retry_from is not None and time.monotonic() >= self._retry_at:
            self._cursor = min(self._cursor, self._retry_from - 1)
            self._retry_from = None
        free = PUBLISH_WINDOW - len(self._sent)
        if free <= 0:
            return 0
        with self._sessions() as session:
            rows = session.execute(
                select(
                    OutboxEvent.id,
                    OutboxEvent.event_id,
                    OutboxEvent.topic,
                    OutboxEvent.payload,
                    OutboxEvent.retain,
                )
                .where(OutboxEvent.published_at.is_(None))
                .where(OutboxEvent.id > self._cursor)
                .order_by(OutboxEvent.id)
                .limit(free)
            ).all()
        count = 0
        for row_id, event_id, topic, payload, retain in rows:
            if row_id in self._outstanding:
                self._cursor = row_id
                continue
            if not self._publish(_Sent("outbox", row_id, event_id, topic), payload, retain):
                break
            self._outstanding.add(row_id)
            self._cursor = row_id
            count += 1
        return count

    def _mark_broker_acks(self) -> int:
        """Mark outbox rows published for the broker acks heard so far."""
        done: list[_Sent] = []
        while self._broker_acks:
            mid, refused = self._broker_acks.popleft()
            sent = self._sent.pop(mid, None)
            if sent is None:
                continue
            if refused:
                self._refused(sent)
                continue
            done.append(sent)
        if not done:
            return 0
        now = self._clock()
        rows = [s.row_id for s in done if s.kind == "outbox"]
        moves = [s.event_id for s in done if s.kind == "outbox" and s.topic == "moves"]
        with self._sessions.begin() as session:
            for start in range(0, len(rows), CHUNK):
                session.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.id.in_(rows[start : start + CHUNK]))
                    .values(published_at=now, attempts=OutboxEvent.attempts + 1)
                    .execution_options(synchronize_session=False)
                )
            for start in range(0, len(moves), CHUNK):
                session.execute(
                    update(Move)
                    .where(Move.event_id.in_(moves[start : start + CHUNK]))
                    .values(last_sent_at=now, send_count=Move.send_count + 1)
                    .execution_options(synchronize_session=False)
                )
        self._outstanding.difference_update(rows)
        for sent in done:
            if sent.kind == "resend":
                self._resending.discard(sent.event_id)
        self.counters.published += len(rows)
        return len(done)

    def _refused(self, sent: _Sent) -> None:
        """The broker acknowledged with an error code: try again later, from that row on."""
        self.counters.publish_refused += 1
        if not self._refused_logged:
            _LOGGER.error(
                "%s: broker refused event %s on %s; retrying", self._device, sent.event_id,
                sent.topic,
            )
            self._refused_logged = True
        if sent.kind == "outbox":
            self._outstanding.discard(sent.row_id)
            first = sent.row_id if self._retry_from is None else min(self._retry_from, sent.row_id)
            self._retry_from = first
            self._retry_at = time.monotonic() + self._config.mqtt.reconnect_max_s
        elif sent.kind == "resend":
            self._resending.discard(sent.event_id)

    def _sweep_skipped(self) -> None:
        """Publish rows whose transaction committed after later rows were already sent."""
        with self._sessions() as session:
            late = list(
                session.scalars(
                    select(OutboxEvent.id)
                    .where(OutboxEvent.published_at.is_(None))
                    .where(OutboxEvent.id <= self._cursor)
                    .order_by(OutboxEvent.id)
                    .limit(PUBLISH_WINDOW + 1)
                )
            )
        skipped = [row_id for row_id in late if row_id not in self._outstanding]
        if skipped and self._retry_from is None:
            _LOGGER.info(
                "site %s: %d outbox rows committed late, publishing them now",
                self._config.site_id,
                len(skipped),
            )
            self._cursor = skipped[0] - 1

    def _prune(self) -> None:
        keep = self._config.mqtt.outbox_keep_hours
        cutoff = self._clock() - timedelta(hours=keep)
        unacked = select(Move.event_id).where(Move.acked_at.is_(None))
        with self._sessions.begin() as session:
            session.execute(
                delete(OutboxEvent)
                .where(OutboxEvent.published_at.is_not(None))
                .where(OutboxEvent.published_at < cutoff)
                .where(OutboxEvent.event_id.not_in(unacked))
                .execution_options(synchronize_session=False)
            )

    # --- moves the TOS has not acknowledged ----------------------------------------------

    def _resend_due(self) -> int:
        """Send again the moves the TOS has not acknowledged in time, oldest first.

        How many go per round follows how many acks the TOS managed since the last round
        (at least RESEND_MIN): a TOS that fell behind is not buried under resends that its
        broker queue would only drop again. Each move also backs off: the n-th resend waits
        2**(n-1) ack timeouts, at most RESEND_BACKOFF_CAP.
        """
        if not self._connected.is_set():
            return 0
        budget = min(
            max(RESEND_MIN, self._acks_since_resend), PUBLISH_WINDOW - len(self._sent)
        )
        self._acks_since_resend = 0
        if budget <= 0:
            return 0
        now = self._clock()
        with self._sessions.begin() as session:
            rows = session.execute(
                select(
                    Move.id,
                    Move.event_id,
                    Move.send_count,
                    Move.last_sent_at,
                    OutboxEvent.payload,
                    OutboxEvent.retain,
                )
                .join(OutboxEvent, OutboxEvent.event_id == Move.event_id, isouter=True)
                .where(Move.acked_at.is_(None))
                .where(Move.last_sent_at.is_not(None))
                .where(Move.last_sent_at < now - self._ack_timeout)
                .order_by(Move.last_sent_at, Move.id)
                .limit(budget * 2 + len(self._resending))
            ).all()
            sent_ids = []
            for move_id, event_id, send_count, last_sent_at, payload, retain in rows:
                if event_id in self._resending:
                    continue
                backoff = 2 ** min(max(send_count - 1, 0), RESEND_BACKOFF_CAP)
                if last_sent_at > now - self._ack_timeout * backoff:
                    continue
                if payload is None:  # the event row is gone: rebuild it from the move
                    payload = self._rebuild_move_payload(session, move_id)
                if not self._publish(_Sent("resend", move_id, event_id, "moves"), payload, retain):
                    break
                self._resending.add(event_id)
                sent_ids.append(move_id)
                if len(sent_ids) >= budget:
                    break
            for start in range(0, len(sent_ids), CHUNK):
                session.execute(
                    update(Move)
                    .where(Move.id.in_(sent_ids[start : start + CHUNK]))
                    .values(last_sent_at=now, send_count=Move.send_count + 1)
                    .execution_options(synchronize_session=False)
                )
        if not rows and self._resend_logged:
            _LOGGER.info("site %s: the TOS caught up, no move overdue", self._config.site_id)
            self._resend_logged = False
        if sent_ids:
            self.counters.resent += len(sent_ids)
            if not self._resend_logged:
                _LOGGER.warning(
                    "site %s: moves not acknowledged by the TOS within %.0f s, sending again",
                    self._config.site_id,
                    self._config.mqtt.tos_ack_timeout_s,
                )
                self._resend_logged = True
        return len(sent_ids)

    def _rebuild_move_payload(self, session: Session, move_id: int) -> str:
        from gated.events import move_event

        move = session.get(Move, move_id)
        assert move is not None
        payload = outbox.envelope(
            site=self._config.site_id,
            lane=move.lane,
            body=move_event(move),
            event_id=move.event_id,
            time=move.occurred_at,
        )
        return json.dumps(payload, separators=(",", ":"), default=str)

    # --- commands from the TOS --------------------------------------------------------------

    def _handle_inbound(self) -> int:
        handled = 0
        acks: list[tuple[_Inbound, AckCommand]] = []
        while self._inbound:
            item = self._inbound.popleft()
            handled += 1
            kind = self._topics.command_kind(item.topic)
            command: Any = None
            rejected: CommandRejected | None = None
            if kind is not None and kind != "errors":
                try:
                    command = parse_command(
                        kind, item.payload, self._config.mqtt.max_command_bytes
                    )
                except CommandRejected as exc:
                    rejected = exc
            if isinstance(command, AckCommand):
                acks.append((item, command))
                continue
            # replies and PUBACKs go out in the order the commands came in
            self._apply_acks(acks)
            acks = []
            if kind is None or kind == "errors":  # our own replies (MQTT 3.1.1 has no no-local)
                self._ack_inbound(item)
            elif rejected is not None:
                self._reject(item, kind, rejected)
            else:
                self._apply_one(item, kind, command)
        self._apply_acks(acks)
        return handled

    def _apply_one(self, item: _Inbound, kind: str, command: Any) -> None:
        try:
            with self._sessions.begin() as session:
                apply_command(session, command, self._clock())
        except CommandRejected as exc:
            self._reject(item, kind, exc)
            return
        except SQLAlchemyError as exc:
            _LOGGER.warning(
                "site %s: TOS command on %s not applied: %s", self._config.site_id, kind, str(exc)
            )
            self._reject(
                item,
                kind,
                CommandRejected("not_applied", exc.__class__.__name__, command.command_id),
            )
            return
        self.counters.commands += 1
        self._ack_inbound(item)

    def _apply_acks(self, acks: list[tuple[_Inbound, AckCommand]]) -> None:
        if not acks:
            return
        ids = list(dict.fromkeys(i for _, command in acks for i in command.all_ids()))
        with self._sessions.begin() as session:
            newly, unknown = apply_acks(session, ids, self._clock())
        self.counters.acked += newly
        self._acks_since_resend += len(ids)
        missing = set(unknown)
        for item, command in acks:
            strange = [i for i in command.all_ids() if i in missing]
            if strange:
                detail = f"no move with event id {', '.join(strange[:5])}"
                self._reject(
                    item, "acks", CommandRejected("unknown_event", detail, command.command_id)
                )
            else:
                self.counters.commands += 1
                self._ack_inbound(item)

    def _reject(self, item: _Inbound, kind: str, exc: CommandRejected) -> None:
        self.counters.bad_commands += 1
        _LOGGER.warning(
            "site %s: TOS command on tos/%s refused: %s: %s",
            self._config.site_id,
            kind[:64],
            exc.code,
            exc.detail,
        )
        body = {
            "type": "command_error",
            "topic": item.topic[:255],
            "command_id": exc.command_id,
            "error": exc.code,
            "detail": exc.detail[:1000],
        }
        payload = outbox.envelope(site=self._config.site_id, lane=None, body=body)
        event_id = str(payload["event_id"])
        self._publish(_Sent("direct", 0, event_id, "tos/errors"), json.dumps(payload), False)
        self._ack_inbound(item)

    def _ack_inbound(self, item: _Inbound) -> None:
        # an ack from an older connection could name another message of the new one
        if item.qos > 0 and item.generation == self._generation and self._client is not None:
            self._client.ack(item.mid, item.qos)
