"""The transactional outbox: events are rows written in the caller's database transaction.

A row is published by `tos_bridge` and removed only when the broker acknowledged it. Topics are
stored relative to `<prefix>/<site>/` (e.g. `transactions`, `moves`, `lanes/1/state`).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.orm import Session

from gated.domain import utcnow
from gated.models import OutboxEvent

SCHEMA_VERSION = 1


def add_event(
    session: Session,
    *,
    site: str,
    topic: str,
    lane: str | None,
    body: dict[str, Any],
    retain: bool = False,
    event_id: str | None = None,
) -> str:
    """Queue one event in the caller's transaction; returns its event id (stable on retries)."""
    event_id = event_id or str(uuid.uuid4())
    payload = {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id,
        "site": site,
        "lane": lane,
        "time": utcnow().isoformat(),
        **body,
    }
    session.add(
        OutboxEvent(
            event_id=event_id,
            topic=topic,
            lane=lane,
            payload=json.dumps(payload, separators=(",", ":"), default=str),
            retain=retain,
        )
    )
    return event_id
