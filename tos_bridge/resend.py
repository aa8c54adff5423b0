"""Moves the TOS has not acknowledged are sent again, same event id, until it does.

A broker's PUBACK is not delivery: a subscriber that cannot keep up loses messages to its
queue limit. The `move` table is the durable record here: a move with no `acked_at` whose last
send is older than `mqtt.tos_ack_timeout_s` goes again, with its original payload.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gated import outbox
from gated.config import SiteConfig
from gated.events import MOVES_TOPIC, move_event
from gated.models import Move, OutboxEvent
from tos_bridge.publisher import CHUNK, Publisher, Sent

_LOGGER = logging.getLogger(__name__)

RESEND_MIN = 100  # moves resent per round however few acks the TOS managed
BACKOFF_CAP = 4  # the n-th resend of a move waits 2**(n-1) ack timeouts, at most 2**4


class Resender:
    """Chooses the overdue moves and hands them to the publisher, at the TOS's pace.

    How many go per round follows how many acks the TOS sent since the last round (at
    least RESEND_MIN): a TOS that fell behind is not buried under resends its broker queue
    would only drop again.
    """

    def __init__(
        self,
        config: SiteConfig,
        sessions: sessionmaker[Session],
        publisher: Publisher,
        clock: Callable[[], datetime],
    ) -> None:
        self._config = config
        self._sessions = sessions
        self._publisher = publisher
        self._clock = clock
        self._timeout = timedelta(seconds=config.mqtt.tos_ack_timeout_s)
        self.every_s = min(max(config.mqtt.tos_ack_timeout_s / 4, 0.05), 2.0)
        self._in_flight: set[str] = set()  # resent, broker ack not yet heard
        self._acks_seen = 0
        self._behind = False

    def reset(self) -> None:
        self._in_flight.clear()
        self._acks_seen = 0

    def tos_acked(self, count: int) -> None:
        self._acks_seen += count

    def broker_acked(self, sent: Sent) -> None:
        self._in_flight.discard(sent.event_id)

    def resend_due(self) -> int:
        """Send the overdue moves of this round; returns how many went."""
        budget = min(max(RESEND_MIN, self._acks_seen), self._publisher.free)
        self._acks_seen = 0
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
                )
                .join(OutboxEvent, OutboxEvent.event_id == Move.event_id, isouter=True)
                .where(Move.acked_at.is_(None))
                .where(Move.last_sent_at.is_not(None))
                .where(Move.last_sent_at < now - self._timeout)
                .order_by(Move.last_sent_at, Move.id)
                .limit(budget * 2 + len(self._in_flight))
            ).all()
            sent_ids = []
            for move_id, event_id, send_count, last_sent_at, payload in rows:
                backoff = 2 ** min(max(send_count - 1, 0), BACKOFF_CAP)
                if event_id in self._in_flight or last_sent_at > now - self._timeout * backoff:
                    continue
                if payload is None:  # the event row was pruned: rebuild it from the move
                    payload = self._rebuild(session, move_id)
                if not self._publisher.publish(Sent("resend", move_id, event_id, MOVES_TOPIC),
                                               payload):
                    break
                self._in_flight.add(event_id)
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
        self._log(bool(rows), len(sent_ids))
        return len(sent_ids)

    def _log(self, overdue: bool, sent: int) -> None:
        if sent and not self._behind:
            _LOGGER.warning(
                "site %s: moves not acknowledged by the TOS within %.0f s, sending again",
                self._config.site_id,
                self._config.mqtt.tos_ack_timeout_s,
            )
            self._behind = True
        elif not overdue and self._behind:
            _LOGGER.info("site %s: the TOS caught up, no move overdue", self._config.site_id)
            self._behind = False

    def _rebuild(self, session: Session, move_id: int) -> str:
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
