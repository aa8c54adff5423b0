"""Building blocks for the TOS bridge tests: a site on a real broker, a TOS that subscribes.

The TOS here is a real paho client on the test's broker. It records every event (first
delivery order per lane, duplicates counted) and can acknowledge moves, slowly if asked.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import jsonschema
import yaml
from paho.mqtt.client import Client, MQTTMessage, MQTTv5, MQTTv311
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session, sessionmaker

from gated import models
from gated.config import SiteConfig, load_config
from gated.db import make_engine, session_factory, upgrade
from gated.domain import utcnow
from gated.events import move_event, queue_move
from gated.outbox import add_event, envelope
from tos_bridge import TosBridge

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "example.yaml"
SCHEMAS = REPO / "docs" / "schemas"
SCHEMA_BY_TYPE = {
    "transaction": "transaction.json",
    "move": "move.json",
    "lane_state": "lane_state.json",
    "command_error": "command_error.json",
}


class Broker(Protocol):
    host: str
    port: int


def site_config(tmp_path: Path, broker: Broker, **mqtt: Any) -> SiteConfig:
    """The example site on a SQLite file in tmp_path, talking to the test's broker."""
    config = load_config(EXAMPLE)
    settings = config.mqtt.model_copy(
        update={"host": broker.host, "port": broker.port, "reconnect_max_s": 2, **mqtt}
    )
    return config.model_copy(
        update={
            "database": config.database.model_copy(
                update={"url": f"sqlite:///{tmp_path}/gated.db"}
            ),
            "mqtt": settings,
        }
    )


def write_config(config: SiteConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    return path


def database(config: SiteConfig) -> tuple[Engine, sessionmaker[Session]]:
    engine = make_engine(config.database.url)
    upgrade(engine)
    return engine, session_factory(engine)


def container_number(index: int) -> str:
    from stdnum import iso6346

    base = f"TSTU{index % 1_000_000:06d}"
    return base + iso6346.calc_check_digit(base)


def write_moves(
    sessions: sessionmaker[Session],
    site: str,
    count: int,
    lanes: Iterable[str] = ("1", "2"),
    per_commit: int = 100,
    start: int = 0,
    pause: Callable[[], None] | None = None,
) -> list[str]:
    """Queue `count` gate-in moves round-robin over lanes; returns event ids in commit order."""
    lanes = list(lanes)
    ids: list[str] = []
    index = start
    while index < start + count:
        with sessions.begin() as session:
            for _ in range(min(per_commit, start + count - index)):
                lane = lanes[index % len(lanes)]
                move = models.Move(
                    kind="gate_in",
                    lane=lane,
                    container_number=container_number(index),
                    size_type="42G1",
                    from_location=f"GATE lane {lane}",
                    to_location="A1-01-01-1",
                    truck="E200ABCD",
                )
                ids.append(queue_move(session, site, move))
                index += 1
        if pause is not None:
            pause()
    return ids


def write_moves_bulk(
    sessions: sessionmaker[Session],
    site: str,
    count: int,
    lanes: Iterable[str] = ("1", "2"),
    per_commit: int = 2000,
) -> list[str]:
    """Like write_moves, with the same payloads, through bulk inserts (for large bursts)."""
    lanes = list(lanes)
    ids: list[str] = []
    for first in range(0, count, per_commit):
        moves: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        now = utcnow()
        for index in range(first, min(first + per_commit, count)):
            lane = lanes[index % len(lanes)]
            move = models.Move(
                event_id=str(uuid.uuid4()),
                kind="gate_in",
                lane=lane,
                container_number=container_number(index),
                size_type="42G1",
                from_location=f"GATE lane {lane}",
                to_location="A1-01-01-1",
                truck="E200ABCD",
                occurred_at=now,
                send_count=0,
                details={},
            )
            payload = envelope(
                site=site, lane=lane, body=move_event(move), event_id=move.event_id, time=now
            )
            moves.append(
                {c.name: getattr(move, c.key) for c in models.Move.__table__.columns
                 if c.name != "id"}
            )
            events.append(
                {
                    "event_id": move.event_id,
                    "topic": "moves",
                    "lane": lane,
                    "payload": json.dumps(payload, separators=(",", ":")),
                    "retain": False,
                    "created_at": now,
                    "attempts": 0,
                }
            )
            ids.append(move.event_id)
        with sessions.begin() as session:
            session.execute(insert(models.Move), moves)
            session.execute(insert(models.OutboxEvent), events)
    return ids


def write_events(sessions: sessionmaker[Session], site: str, bodies: list[dict[str, Any]]) -> None:
    with sessions.begin() as session:
        for body in bodies:
            add_event(session, site=site, topic="transactions", lane="1", body=body)


def validate(payload: dict[str, Any], topic: str | None = None) -> None:
    """Check one published payload against its JSON Schema in docs/schemas/ (chosen by its
    `type`, or by its topic relative to the site)."""
    name = SCHEMA_BY_TYPE.get(str(payload.get("type")))
    if topic is not None:
        name = schema_for_topic(topic)
    assert name is not None, f"no schema for {topic!r} / type {payload.get('type')!r}"
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.validate(
        payload, schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def schema_for_topic(topic: str) -> str | None:
    fixed = {"transactions": "transaction.json", "moves": "move.json",
             "tos/errors": "command_error.json"}
    if topic in fixed:
        return fixed[topic]
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == "lanes":
        return {"state": "lane_state.json", "credential": "credential.json"}.get(parts[2])
    return None


class Tos:
    """A TOS subscriber on the test broker: records events, acknowledges moves."""

    def __init__(
        self,
        config: SiteConfig,
        *,
        client_id: str = "tos",
        ack_moves: bool = True,
        delay_s: float = 0.0,
        delay_every: int = 1,
        persistent: bool = True,
        ignore_first: Callable[[str], bool] | None = None,
        protocol: str = "5",
        tls_ca: str | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.base = f"{config.mqtt.topic_prefix}/{config.site_id}"
        self.ack_moves = ack_moves
        self.delay_s = delay_s
        self.delay_every = delay_every
        self.ignore_first = ignore_first
        self.lock = threading.Lock()
        self.first_order: dict[str | None, list[str]] = {}  # lane -> event ids, first delivery
        self.seen: set[str] = set()
        self.deliveries = 0
        self.payloads: list[tuple[str, dict[str, Any]]] = []
        self.raw: list[tuple[str, bytes, bool]] = []
        self.user_property_ok = True
        self.ignored: set[str] = set()
        self.connected = threading.Event()
        self.v5 = protocol == "5"
        if self.v5:
            self.client = Client(
                CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTv5
            )
        else:
            self.client = Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=MQTTv311,
                clean_session=not persistent,
            )
        if tls_ca is not None:
            self.client.tls_set(ca_certs=tls_ca)
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self.connected.clear()
        self.client.on_message = self._on_message
        properties = None
        if self.v5 and persistent:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600
        self.client.connect_async(
            config.mqtt.host,
            config.mqtt.port,
            clean_start=not persistent if self.v5 else 3,
            properties=properties,
        )
        self.client.loop_start()
        if not self.connected.wait(10):
            self.close()
            raise TimeoutError("TOS subscriber could not connect")

    def _on_connect(self, client: Client, *_: Any) -> None:
        client.subscribe(f"{self.base}/#", qos=1)
        self.connected.set()

    def _on_message(self, client: Client, _userdata: Any, message: MQTTMessage) -> None:
        topic = message.topic[len(self.base) + 1 :]
        with self.lock:
            self.raw.append((topic, bytes(message.payload), bool(message.retain)))
        if topic.startswith("tos/") and topic != "tos/errors":
            return
        if topic == "availability":
            return
        payload = json.loads(message.payload)
        event_id = payload["event_id"]
        if self.v5:
            props = getattr(message.properties, "UserProperty", None) or []
            if ("event_id", event_id) not in props:
                self.user_property_ok = False
        with self.lock:
            self.deliveries += 1
            if self.ignore_first is not None and event_id not in self.ignored:
                if self.ignore_first(event_id):
                    self.ignored.add(event_id)
                    return
            if event_id not in self.seen:
                self.seen.add(event_id)
                self.first_order.setdefault(payload["lane"], []).append(event_id)
                self.payloads.append((topic, payload))
        if self.delay_s and self.deliveries % self.delay_every == 0:
            time.sleep(self.delay_s)  # a TOS that takes its time over each batch
        if self.ack_moves and topic == "moves":
            client.publish(
                f"{self.base}/tos/acks",
                json.dumps({"schema_version": 1, "event_id": event_id}),
                qos=1,
            )

    def send(self, kind: str, payload: bytes | str | dict[str, Any]) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        self.client.publish(f"{self.base}/tos/{kind}", payload, qos=1).wait_for_publish(5)

    def messages(self, topic: str) -> list[dict[str, Any]]:
        with self.lock:
            return [payload for t, payload in self.payloads if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        # paho closes its wake-up socket pair only when collected; a failing test's
        # traceback keeps this object alive, so close it here for the leak check
        self.client._reset_sockets()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


async def await_until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running(bridge: TosBridge) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(bridge.run(), name="tos-bridge-under-test")
    try:
        yield task
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
