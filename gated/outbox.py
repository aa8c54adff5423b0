"""The transactional outbox: events are rows written in the caller's database transaction.

A row is published by `tos_bridge` and marked published only when the broker acknowledged it.
Topics are stored relative to `<prefix>/<site>/` (e.g. `transactions`, `moves`,
`lanes/1/state`). A process that publishes can ask to be woken after each commit that queued
events (`on_commit`), so it need not poll hard for low latency.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from gated.domain import utcnow
from gated.models import Move, OutboxEvent

_LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_PENDING_KEY = "gated.outbox.pending"
_listeners: list[Callable[[], None]] = []
_listeners_lock = threading.Lock()


def add_event(
    session: Session,
    *,
    site: str,
    topic: str,
    lane: str | None,
    body: dict[str, Any],
    retain: bool = False,
    event_id: str | None = None,
    time: datetime | None = None,
) -> str:
    """Queue one event in the caller's transaction; returns its event id (stable on retries).

    The envelope (schema version, event id, site, lane, time) is added here; `body` carries
    the payload's own fields and must not repeat the envelope's keys.
    """
    if not topic or "+" in topic or "#" in topic or "" in topic.split("/") or "\0" in topic:
        raise ValueError(f"not a topic an event can be published on: {topic!r}")
    payload = envelope(site=site, lane=lane, body=body, event_id=event_id, time=time)
    event_id = str(payload["event_id"])
    session.add(
        OutboxEvent(
            event_id=event_id,
            topic=topic,
            lane=lane,
            payload=json.dumps(payload, separators=(",", ":"), default=str),
            retain=retain,
        )
    )
    session.info[_PENDING_KEY] = True
    return event_id


def envelope(
    *,
    site: str,
    lane: str | None,
    body: dict[str, Any],
    event_id: str | None = None,
    time: datetime | None = None,
) -> dict[str, Any]:
    """An event payload: schema version, event id, site, lane and time, then the body."""
    clash = {"schema_version", "event_id", "site", "lane", "time"} & body.keys()
    if clash:
        raise ValueError(f"event body repeats envelope fields: {sorted(clash)}")
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id or str(uuid.uuid4()),
        "site": site,
        "lane": lane,
        "time": (time or utcnow()).isoformat(),
        **body,
    }


def on_commit(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` (from the committing thread) after each commit that queued events.

    Returns a function that removes the callback again. Callbacks must be quick and
    thread-safe; an exception in one is logged and does not undo the commit.
    """
    with _listeners_lock:
        _listeners.append(callback)

    def remove() -> None:
        with _listeners_lock:
            if callback in _listeners:
                _listeners.remove(callback)

    return remove


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if not session.info.pop(_PENDING_KEY, False):
        return
    with _listeners_lock:
        callbacks = list(_listeners)
    for callback in callbacks:
        try:
            callback()
        except Exception:
            _LOGGER.exception("outbox: commit listener %r failed", callback)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


def backlog(session: Session) -> int:
    """Events written but not yet acknowledged by the broker."""
    return int(
        session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
        )
        or 0
    )


def moves_awaiting_ack(session: Session, limit: int = 200) -> list[Move]:
    """Moves the TOS has not acknowledged yet, oldest first (the kiosk lists them)."""
    query = select(Move).where(Move.acked_at.is_(None)).order_by(Move.occurred_at, Move.id)
    return list(session.scalars(query.limit(limit)))


def count_moves_awaiting_ack(session: Session) -> int:
    query = select(func.count()).select_from(Move).where(Move.acked_at.is_(None))
    return int(session.scalar(query) or 0)
