"""Outbox throughput and latency against a local mosquitto, beside a bare paho publish loop.

    .venv/bin/python bench/outbox.py [--events 20000] [--latency-seconds 20] [--rate 50]

Prints, from one run on one broker:
- bare paho: QoS 1 publishes per second until every PUBACK is in (same payloads, same
  MQTT 5 user property), no database;
- outbox drain: move events per second from one commit of N rows until the bridge has marked
  every row published (broker acknowledged, database updated);
- latency from database commit to receipt at a subscriber, at a steady rate (default 50/s),
  each event in its own transaction as a lane writes them: median, p99, max.
Targets (issue 7): drain >= 2,000 events/s and >= 30 % of bare paho; p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from paho.mqtt.client import Client, MQTTMessage, MQTTv5  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from gated import models  # noqa: E402
from gated.events import queue_move  # noqa: E402
from tests.servers import Mosquitto  # noqa: E402
from tests.test_tos_helpers import (  # noqa: E402
    container_number,
    database,
    site_config,
    write_moves_bulk,
)
from tos_bridge import TosBridge  # noqa: E402
from tos_bridge.mqtt import event_properties  # noqa: E402


async def _until(condition: Any, step_s: float) -> None:
    """Poll a condition set by another thread (paho's or the bridge's)."""
    while True:
        if condition():
            return
        await asyncio.sleep(step_s)


def bare_paho(
    broker: Mosquitto,
    config: Any,
    payloads: list[tuple[str, str]],
    inflight: int,
    window: int | None = None,
) -> float:
    """Publish every payload with QoS 1 from a paho loop thread; events per second.

    With `window`, at most that many messages are handed to paho before their PUBACK (paho
    scans its whole queue on every PUBACK, so an unbounded burst slows it down).
    """
    done = threading.Event()
    acked = 0
    slots = threading.Semaphore(window or len(payloads))

    def on_publish(*_: Any) -> None:
        nonlocal acked
        acked += 1
        slots.release()
        if acked == len(payloads):
            done.set()

    connected = threading.Event()
    client = Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=MQTTv5)
    client.max_inflight_messages_set(inflight)
    client.on_publish = on_publish
    client.on_connect = lambda *_: connected.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    connected.wait(10)
    started = time.perf_counter()
    for event_id, payload in payloads:
        slots.acquire()
        client.publish(
            "gated/bench/moves", payload, qos=1, properties=event_properties(config, event_id)
        )
    done.wait(120)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return len(payloads) / elapsed


async def drain(config: Any, sessions: Any, count: int) -> tuple[float, list[tuple[str, str]]]:
    """Commit `count` move events at once; events per second until all are marked published."""
    bridge = TosBridge(config, sessions)
    task = asyncio.create_task(bridge.run(), name="bench-bridge")
    await _until(lambda: bridge.ready, 0.01)
    ids = await asyncio.to_thread(
        write_moves_bulk, sessions, config.site_id, count, ("1", "2", "3", "4"), count
    )
    started = time.perf_counter()
    bridge.wake()
    await _until(lambda: bridge.counters.published >= count, 0.002)
    elapsed = time.perf_counter() - started
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    with sessions() as session:
        rows = session.execute(
            models.OutboxEvent.__table__.select().where(
                models.OutboxEvent.event_id.in_(ids[:count])
            )
        ).all()
    payloads = [(row.event_id, row.payload) for row in rows]
    return count / elapsed, payloads


async def latency(config: Any, sessions: Any, seconds: float, rate: float) -> list[float]:
    """Commit one move per 1/rate s; milliseconds from commit to a subscriber's receipt."""
    committed: dict[str, float] = {}
    received: dict[str, float] = {}
    subscribed = threading.Event()

    def on_message(_c: Any, _u: Any, message: MQTTMessage) -> None:
        event_id = json.loads(message.payload)["event_id"]
        received.setdefault(event_id, time.perf_counter())

    tos = Client(CallbackAPIVersion.VERSION2, client_id="bench-tos", protocol=MQTTv5)
    tos.on_message = on_message
    tos.on_subscribe = lambda *_: subscribed.set()
    tos.on_connect = lambda c, *_: c.subscribe(f"gated/{config.site_id}/moves", qos=1)
    tos.connect(config.mqtt.host, config.mqtt.port)
    tos.loop_start()
    subscribed.wait(10)

    bridge = TosBridge(config, sessions)
    task = asyncio.create_task(bridge.run(), name="bench-bridge-latency")
    await _until(lambda: bridge.ready, 0.01)

    def produce() -> None:
        period = 1.0 / rate
        next_at = time.perf_counter()
        for index in range(int(seconds * rate)):
            with sessions.begin() as session:
                move = models.Move(
                    kind="gate_in", lane=str(index % 4 + 1),
                    container_number=container_number(900000 + index), size_type="45G1",
                )
                event_id = queue_move(session, config.site_id, move)
            committed[event_id] = time.perf_counter()
            next_at += period
            time.sleep(max(0.0, next_at - time.perf_counter()))

    await asyncio.to_thread(produce)
    deadline = time.monotonic() + 10
    await _until(
        lambda: len(received) >= len(committed) or time.monotonic() > deadline, 0.05
    )
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    tos.disconnect()
    tos.loop_stop()
    missing = set(committed) - set(received)
    if missing:
        print(f"  WARNING: {len(missing)} events not received")
    return [(received[i] - committed[i]) * 1000 for i in committed if i in received]


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=50.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir / "broker")
        broker.start()
        try:
            config = site_config(workdir, broker, tos_ack_timeout_s=3600)
            engine, sessions = database(config)
            drain_rate, payloads = asyncio.run(drain(config, sessions, args.events))
            bare = {
                f"{inflight:4d} in flight, no window": bare_paho(broker, config, payloads, inflight)
                for inflight in (20, config.mqtt.max_inflight)
            }
            bare[f"{config.mqtt.max_inflight:4d} in flight, window 1000"] = bare_paho(
                broker, config, payloads, config.mqtt.max_inflight, window=1000
            )
            latencies = asyncio.run(
                latency(config, sessions, args.latency_seconds, args.rate)
            )
            engine.dispose()
        finally:
            broker.stop()

    bare_rate = max(bare.values())
    ratio = drain_rate / bare_rate
    print(f"events: {args.events} moves, payload ~{len(payloads[0][1])} bytes, QoS 1, MQTT 5")
    for name, rate in bare.items():
        print(f"bare paho publish loop, {name}: {rate:8.0f} events/s")
    print(
        f"outbox drain (SQLite),  {config.mqtt.max_inflight:4d} in flight, window 1000: "
        f"{drain_rate:8.0f} events/s ({ratio:.0%} of the fastest bare loop)"
    )
    print(
        f"commit -> subscriber at {args.rate:.0f}/s over {len(latencies)} events: "
        f"median {statistics.median(latencies):.1f} ms, p99 {p(latencies, 0.99):.1f} ms, "
        f"max {max(latencies):.1f} ms"
    )
    ok = drain_rate >= 2000 and ratio >= 0.30 and p(latencies, 0.99) < 50
    print(f"targets (>= 2000/s, >= 30 % of bare, p99 < 50 ms): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
