"""Publishing from the outbox: rows go to paho in id order and are marked on the broker's ack.

Everything here runs on the bridge's worker thread. paho's thread only appends
`(message id, refused)` to `broker_acks`; the worker maps ids back to rows. Rows are never
marked before their PUBACK, so a crash at any point leaves them to be sent again (the event id
lets subscribers drop the duplicate).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from paho.mqtt.client import Client
from paho.mqtt.enums import MQTTErrorCode
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from gated.config import SiteConfig
from gated.models import Move, OutboxEvent
from tos_bridge import mqtt

_LOGGER = logging.getLogger(__name__)

WINDOW = 1000  # messages handed to paho and not yet acknowledged by the broker
CHUNK = 500  # ids per IN (...) clause


class Unpublishable(Exception):
    """A message MQTT cannot carry (a wildcard in its topic, say)."""


@dataclass(frozen=True)
class Sent:
    """A message handed to paho: an outbox row, a move resent, or a direct reply."""

    kind: str  # outbox, resend, direct
    row_id: int  # outbox row id, move id, or 0
    event_id: str
    topic: str  # relative to <prefix>/<site>/


@dataclass
class Acked:
    outbox: list[Sent]
    resend: list[Sent]
    refused: list[Sent]


class Publisher:
    """Hands messages to paho and keeps the message id of each until its PUBACK."""

    def __init__(
        self,
        config: SiteConfig,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
    ) -> None:
        self._config = config
        self._sessions = sessions
        self._clock = clock
        self._topics = mqtt.Topics(config)
        self.client: Client | None = None
        self.broker_acks: deque[tuple[int, bool]] = deque()  # appended by paho's thread
        self._sent: dict[int, Sent] = {}
        self._outstanding: set[int] = set()  # outbox row ids handed to paho, not yet acked
        self._cursor = 0  # highest outbox id handed to paho in this process
        self._retry_from: int | None = None
        self._retry_at = 0.0
        self._refused_logged = False
        self._unmarked: list[Sent] = []
        self._skipped: set[int] = set()  # rows MQTT cannot carry, logged once

    def reset(self) -> None:
        """Forget what an earlier client held: its messages died with it, rows get resent."""
        self.broker_acks.clear()
        self._unmarked.clear()
        self._skipped.clear()
        self._sent.clear()
        self._outstanding.clear()
        self._cursor = 0
        self._retry_from = None

    @property
    def free(self) -> int:
        return WINDOW - len(self._sent)

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    def publish(self, sent: Sent, payload: str | bytes, retain: bool = False) -> bool:
        """Hand one QoS 1 message to paho; False when paho will not take it."""
        client = self.client
        if client is None:
            return False
        try:
            info = client.publish(
                self._topics.full(sent.topic),
                payload,
                qos=1,
                retain=retain,
                properties=mqtt.event_properties(self._config, sent.event_id),
            )
        except ValueError as exc:  # a topic or payload MQTT cannot carry: never will
            raise Unpublishable(str(exc)) from exc
        # NO_CONN: paho keeps the message and sends it after reconnecting
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            _LOGGER.warning(
                "site %s: paho refused a publish on %s: %s",
                self._config.site_id,
                sent.topic,
                info.rc,
            )
            return False
        self._sent[info.mid] = sent
        return True

    # --- the outbox, in id order ----------------------------------------------------------

    def publish_pending(self) -> int:
        """Hand the next unpublished rows to paho, oldest first; returns how many."""
        if self._retry_from is not None and time.monotonic() >= self._retry_at:
            self._cursor = min(self._cursor, self._retry_from - 1)
            self._retry_from = None
        free = self.free
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
            if row_id not in self._outstanding:
                try:
                    if not self.publish(Sent("outbox", row_id, event_id, topic), payload, retain):
                        break
                except Unpublishable as exc:
                    # left in the outbox (it shows in the backlog) rather than stop the rest
                    _LOGGER.error(
                        "site %s: outbox row %d (event %s) cannot be published, skipped: %s",
                        self._config.site_id,
                        row_id,
                        event_id,
                        str(exc),  # not the exception: its frames would keep paho alive
                    )
                    self._cursor = row_id
                    self._skipped.add(row_id)
                    continue
                self._outstanding.add(row_id)
                count += 1
            self._cursor = row_id
        return count

    def take_broker_acks(self) -> Acked:
        """Sort the PUBACKs heard so far; mark the outbox rows among them published."""
        acked = Acked([], [], [])
        while self.broker_acks:
            mid, refused = self.broker_acks.popleft()
            sent = self._sent.pop(mid, None)
            if sent is None:
                continue
            if refused:
                acked.refused.append(sent)
                self._refused(sent)
            elif sent.kind == "outbox":
                acked.outbox.append(sent)
            elif sent.kind == "resend":
                acked.resend.append(sent)
        # rows acked before a database failure are marked with the next ones
        unmarked, self._unmarked = self._unmarked + acked.outbox, []
        if unmarked:
            try:
                self._mark(unmarked)
            except Exception:
                self._unmarked = unmarked
                raise
        return acked

    def _mark(self, done: list[Sent]) -> None:
        now = self._clock()
        rows = [sent.row_id for sent in done]
        moves = [sent.event_id for sent in done if sent.topic == "moves"]
        with self._sessions.begin() as session:
            for start in range(0, len(rows), CHUNK):
                session.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.id.in_(rows[start : start + CHUNK]))
                    .values(published_at=now, attempts=OutboxEvent.attempts + 1)
                    .execution_options(synchronize_session=False)
                )
            # the TOS's ack timeout of a move runs from the broker's ack of its first send
            for start in range(0, len(moves), CHUNK):
                session.execute(
                    update(Move)
                    .where(Move.event_id.in_(moves[start : start + CHUNK]))
                    .values(last_sent_at=now, send_count=Move.send_count + 1)
                    .execution_options(synchronize_session=False)
                )
        self._outstanding.difference_update(rows)

    def _refused(self, sent: Sent) -> None:
        """The broker acknowledged with an error code: try again later, from that row on."""
        if not self._refused_logged:
            _LOGGER.error(
                "site %s: broker refused event %s on %s; retrying every %d s",
                self._config.site_id,
                sent.event_id,
                sent.topic,
                self._config.mqtt.reconnect_max_s,
            )
            self._refused_logged = True
        if sent.kind == "outbox":
            self._outstanding.discard(sent.row_id)
            first = sent.row_id if self._retry_from is None else min(self._retry_from, sent.row_id)
            self._retry_from = first
            self._retry_at = time.monotonic() + self._config.mqtt.reconnect_max_s

    def sweep_skipped(self) -> None:
        """Go back for rows whose transaction committed after later rows were already sent.

        On SQLite ids are handed out in commit order; on PostgreSQL two transactions can
        commit out of id order, and the cursor would otherwise pass over the late one.
        """
        with self._sessions() as session:
            late = list(
                session.scalars(
                    select(OutboxEvent.id)
                    .where(OutboxEvent.published_at.is_(None))
                    .where(OutboxEvent.id <= self._cursor)
                    .order_by(OutboxEvent.id)
                    .limit(WINDOW + 1)
                )
            )
        known = self._outstanding | self._skipped
        skipped = [row_id for row_id in late if row_id not in known]
        if skipped and self._retry_from is None:
            _LOGGER.info(
                "site %s: %d outbox rows committed late, publishing them now",
                self._config.site_id,
                len(skipped),
            )
            self._cursor = skipped[0] - 1

    def prune(self) -> None:
        """Delete published rows past their keeping time, except unacknowledged moves'."""
        cutoff = self._clock() - timedelta(hours=self._config.mqtt.outbox_keep_hours)
        unacked = select(Move.event_id).where(Move.acked_at.is_(None))
        with self._sessions.begin() as session:
            session.execute(
                delete(OutboxEvent)
                .where(OutboxEvent.published_at.is_not(None))
                .where(OutboxEvent.published_at < cutoff)
                .where(OutboxEvent.event_id.not_in(unacked))
                .execution_options(synchronize_session=False)
            )
