"""The TOS bridge: drains the outbox to MQTT, takes TOS commands in, resends unacked moves.

Three threads cooperate. paho's network thread only queues what it hears (broker acks by
message id, inbound commands) and wakes the worker. The worker thread owns the database side:
it marks outbox rows published when their broker ack arrives, applies commands, publishes the
next rows in id order and resends moves the TOS has not acknowledged. `run()` on the asyncio
loop starts and stops the worker and reports the broker's health.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gated import outbox
from gated.config import SiteConfig
from gated.domain import DeviceHealth, utcnow
from tos_bridge import mqtt
from tos_bridge.inbound import CommandHandler, Inbound
from tos_bridge.publisher import Publisher
from tos_bridge.resend import Resender

_LOGGER = logging.getLogger(__name__)

IDLE_POLL_S = 0.05  # how often the worker looks for rows written by other processes
SWEEP_S = 5.0  # how often rows skipped by a late commit are looked for
PRUNE_S = 300.0
STOP_GRACE_S = 2.0  # a clean stop waits this long for outstanding broker acks
DB_RETRY_CAP_S = 10.0


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
        self._on_health = on_health
        self._topics = mqtt.Topics(config)
        self._device = f"mqtt {config.mqtt.host}:{config.mqtt.port}"
        self.counters = BridgeCounters()

        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._generation = 0
        self._inbound: deque[Inbound] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Client | None = None

        # used by the worker thread only
        self._publisher = Publisher(config, session_factory, clock)
        self._resender = Resender(config, session_factory, self._publisher, clock)
        self._commands = CommandHandler(
            config, session_factory, self._publisher, self._acknowledge, clock
        )

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
        self._publisher.broker_acks.append((mid, bool(reason_code.is_failure)))
        self._wake.set()

    def _on_message(self, _client: Client, _userdata: Any, message: MQTTMessage) -> None:
        self._inbound.append(
            Inbound(
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
        # run() may be called again after a failure (a supervisor restarting the service)
        self._publisher.reset()
        self._resender.reset()
        self._inbound.clear()
        client = mqtt.build_client(self._config, self._topics)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        self._publisher.client = client
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
                if now >= next_resend and self._connected.is_set():
                    resent = self._resender.resend_due()
                    self.counters.resent += resent
                    busy += resent
                    next_resend = now + self._resender.every_s
                if now >= next_sweep:
                    self._publisher.sweep_skipped()
                    next_sweep = now + SWEEP_S
                if now >= next_prune:
                    self._publisher.prune()
                    next_prune = now + PRUNE_S
            except SQLAlchemyError as exc:
                db_failures += 1
                delay = min(0.1 * 2 ** min(db_failures, 32), DB_RETRY_CAP_S)
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
        busy = self._take_broker_acks()
        busy += self._handle_inbound()
        if self._connected.is_set():
            sent = self._publisher.publish_pending()
            busy += sent
        return busy

    def _take_broker_acks(self) -> int:
        acked = self._publisher.take_broker_acks()
        for sent in acked.resend:
            self._resender.broker_acked(sent)
        for sent in acked.refused:
            self._resender.broker_acked(sent)
        self.counters.published += len(acked.outbox)
        self.counters.publish_refused += len(acked.refused)
        return len(acked.outbox) + len(acked.resend) + len(acked.refused)

    def _handle_inbound(self) -> int:
        items = []
        while self._inbound:
            items.append(self._inbound.popleft())
        if not items:
            return 0
        before = self._commands.counts.ack_ids
        self._commands.handle(items)
        counts = self._commands.counts
        self._resender.tos_acked(counts.ack_ids - before)
        self.counters.acked = counts.moves_acked
        self.counters.commands = counts.applied
        self.counters.bad_commands = counts.refused
        return len(items)

    def _acknowledge(self, item: Inbound) -> None:
        """PUBACK a command once it is applied or refused (the gate acks them itself)."""
        # an ack from an older connection could name another message of the new one
        if item.qos > 0 and item.generation == self._generation and self._client is not None:
            self._client.ack(item.mid, item.qos)

    def _shutdown(self, client: Client) -> None:
        deadline = time.monotonic() + STOP_GRACE_S
        try:
            while (
                self._publisher.outstanding
                and self._connected.is_set()
                and time.monotonic() < deadline
            ):
                self._take_broker_acks()
                self._wake.wait(0.02)
                self._wake.clear()
            if self._connected.is_set():
                info = client.publish(self._topics.availability, mqtt.OFFLINE, qos=1, retain=True)
                info.wait_for_publish(max(deadline - time.monotonic(), 0.5))
            self._take_broker_acks()
        except (SQLAlchemyError, RuntimeError, ValueError) as exc:
            _LOGGER.warning(
                "site %s: unclean TOS bridge stop: %s", self._config.site_id, str(exc)
            )
        finally:
            client.disconnect()
            client.loop_stop()
            # paho closes its wake-up socket pair only when the client is collected
            self._client = None
            self._publisher.client = None
            self._connected.clear()
            self.counters.connected = 0
            _LOGGER.info("%s: disconnected, site %s offline", self._device, self._config.site_id)
