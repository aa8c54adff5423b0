"""A simulated terminal operating system: publishes what the gate should expect, takes the
gate's events, acknowledges moves, and compares every truck's outcome with its expectation."""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hwsim.scenario import TruckSpec

_LOGGER = logging.getLogger(__name__)


@dataclass
class GateRecord:
    """What the TOS saw of one gate transaction."""

    transaction_id: str
    lane: str | None
    decision: str | None = None
    reasons: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    truck: str | None = None
    ended: bool = False


class SimulatedTos:
    def __init__(self, host: str, port: int, site: str, prefix: str = "gated") -> None:
        self.base = f"{prefix}/{site}"
        self._lock = threading.Lock()
        self.transactions: dict[str, GateRecord] = {}
        self.order: dict[str | None, list[str]] = defaultdict(list)
        self.moves: dict[str, dict[str, Any]] = {}
        self.errors: list[dict[str, Any]] = []
        self.availability: str | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sim-tos-{site}",
            protocol=mqtt.MQTTv5,
        )
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._host, self._port = host, port
        self._connected = threading.Event()

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(10):
            self.stop()
            raise ConnectionError(f"simulated TOS: broker {self._host}:{self._port} unreachable")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            _LOGGER.warning("simulated TOS: broker refused: %s", reason)
            return
        client.subscribe(f"{self.base}/transactions", qos=1)
        client.subscribe(f"{self.base}/moves", qos=1)
        client.subscribe(f"{self.base}/availability", qos=1)
        client.subscribe(f"{self.base}/tos/errors", qos=1)
        self._connected.set()

    # --- what the TOS tells the gate -------------------------------------------------------

    def _send(self, topic: str, body: dict[str, Any]) -> None:
        payload = json.dumps({"schema_version": 1, **body})
        self._client.publish(f"{self.base}/tos/{topic}", payload, qos=1).wait_for_publish(10)

    def announce(self, truck: TruckSpec, epc: str, index: int) -> None:
        """Registry, appointments and holds for one truck, as a TOS would send ahead of it."""
        if truck.registered:
            self._send("trucks", {
                "action": "upsert", "epc": epc, "plate": f"SIM-{index:04d}",
                "company_code": truck.company, "company_name": f"{truck.company} Haulage",
            })
        if not truck.appointment:
            return
        now = datetime.now(UTC)
        window = {
            "window_start": (now - timedelta(hours=1)).isoformat(),
            "window_end": (now + timedelta(hours=4)).isoformat(),
        }
        if truck.containers:
            for slot, number in enumerate(truck.containers):
                self._send("appointments", {
                    "action": "upsert", "reference": f"APT-{index:04d}-{slot}",
                    "direction": "in", "container_number": number,
                    "company_code": truck.company,
                    "yard_position": f"A{slot + 1}-{index % 30 + 1:02d}-03-1",
                    **window,
                })
        else:
            self._send("appointments", {
                "action": "upsert", "reference": f"APT-{index:04d}-P", "direction": "out",
                "company_code": truck.company, "truck_epc": epc, **window,
            })
        for number in truck.containers:
            if truck.hold is not None:
                self._send("holds", {
                    "action": "place", "container_number": number, "kind": truck.hold,
                    "reason": "simulated hold",
                })

    # --- what the gate tells the TOS ------------------------------------------------------

    def _on_message(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            if message.topic.endswith("/availability"):
                self.availability = message.payload.decode(errors="replace")
            return
        topic = message.topic[len(self.base) + 1:]
        with self._lock:
            if topic == "transactions":
                self._on_transaction(body)
            elif topic == "moves":
                self.moves[body["event_id"]] = body.get("move") or {}
                self._send_ack(body["event_id"])
            elif topic == "tos/errors":
                self.errors.append(body)
            elif topic == "availability":
                self.availability = str(body)

    def _send_ack(self, event_id: str) -> None:
        payload = json.dumps({"schema_version": 1, "event_id": event_id})
        self._client.publish(f"{self.base}/tos/acks", payload, qos=1)

    def _on_transaction(self, body: dict[str, Any]) -> None:
        """One `transactions` event (docs/events.md): kind new / update / end."""
        tx = body.get("transaction") or {}
        tx_id = str(tx.get("uuid"))
        record = self.transactions.get(tx_id)
        if record is None:
            record = GateRecord(tx_id, body.get("lane"))
            self.transactions[tx_id] = record
            self.order[record.lane].append(tx_id)
        if tx.get("decision"):
            record.decision = tx["decision"]
            record.reasons = [r.get("code", "") for r in tx.get("reasons") or []
                              if r.get("blocking", True)]
        record.containers = [
            c["container_number"] for c in tx.get("containers") or [] if c.get("container_number")
        ]
        truck = tx.get("truck") or {}
        record.truck = truck.get("epc") if isinstance(truck, dict) else None
        if body.get("kind") == "end":
            record.ended = True

    def snapshot(self) -> tuple[dict[str | None, list[GateRecord]], dict[str, dict[str, Any]]]:
        with self._lock:
            by_lane = {
                lane: [self.transactions[t] for t in ids] for lane, ids in self.order.items()
            }
            return by_lane, dict(self.moves)
