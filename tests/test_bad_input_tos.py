"""Hostile TOS commands over a real mosquitto: each answered on tos/errors, counted, harmless,
and the bridge keeps applying the good ones that follow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.servers import Mosquitto
from tests.test_tos_commands import APPOINTMENT, _tables
from tests.test_tos_helpers import Tos, await_until, database, running, site_config
from tos_bridge import TosBridge
from tos_bridge.commands import CommandRejected, parse_command

HOLD = {"schema_version": 1, "action": "place", "container_number": "CSQU3054383",
        "kind": "customs"}

HOSTILE: list[tuple[str, bytes]] = [
    ("holds", b""),
    ("holds", b"\x00\x01\x02\xff" * 64),
    ("holds", b"null"),
    ("holds", b"\"a string\""),
    ("holds", b"NaN"),
    ("holds", json.dumps({**HOLD, "container_number": ["CSQU3054383"]}).encode()),
    ("holds", json.dumps({**HOLD, "container_number": "CSQU3054383\u0000"}).encode()),
    ("holds", json.dumps({**HOLD, "reason": "x" * 5000}).encode()),
    ("holds", json.dumps({**HOLD, "command_id": "c" * 5000}).encode()),
    ("holds", b'{"schema_version": 1, "schema_version": 1, "action": "place"}'),
    ("trucks", json.dumps({"schema_version": 1, "action": "upsert",
                           "epc": "E2" * 100}).encode()),
    ("trucks", json.dumps({"schema_version": 1, "action": "upsert", "epc": "E200",
                           "company_code": ""}).encode()),
    ("appointments", json.dumps({**APPOINTMENT, "window_start": "yesterday"}).encode()),
    ("appointments", json.dumps({**APPOINTMENT, "window_end": "2026-12-04T07:00:00Z"}).encode()),
    ("acks", json.dumps({"schema_version": 1, "event_ids": ["e"] * 1001}).encode()),
    ("acks", json.dumps({"schema_version": 1, "event_ids": [""]}).encode()),
    ("holds/extra", json.dumps(HOLD).encode()),
    ("HOLDS", json.dumps(HOLD).encode()),
    ("holds", b"{" + b"\"a\":1," * 20000 + b"\"b\":2}"),
]


@pytest.mark.parametrize(("kind", "payload"), HOSTILE)
def test_parse_refuses_hostile_payloads(kind: str, payload: bytes) -> None:
    with pytest.raises(CommandRejected) as caught:
        parse_command(kind, payload, 65536)
    assert caught.value.code in {"malformed", "invalid", "oversized", "unknown_topic"}
    assert caught.value.detail


def test_boolean_schema_version_refused() -> None:
    with pytest.raises(CommandRejected):
        parse_command("holds", json.dumps({**HOLD, "schema_version": True}).encode(), 65536)


@pytest.mark.parametrize("payload", [b"[" * 20000, b'{"a":' * 5000 + b"1" + b"}" * 5000])
def test_parse_refuses_deeply_nested_json(payload: bytes) -> None:
    with pytest.raises(CommandRejected) as caught:
        parse_command("holds", payload, 65536)
    assert caught.value.code == "malformed"


async def test_hostile_commands_and_a_flood_are_answered_counted_and_harmless(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = site_config(tmp_path, mosquitto, max_command_bytes=65536)
    engine, sessions = database(config)
    tos = Tos(config)
    bridge = TosBridge(config, sessions)
    flood = 300
    try:
        async with running(bridge) as task:
            await await_until(lambda: bridge.ready, 10, "bridge subscribed")
            tos.send("appointments", APPOINTMENT)
            await await_until(lambda: bridge.counters.commands == 1, 10, "setup command")
            before = _tables(sessions)
            for kind, payload in HOSTILE:
                tos.send(kind, payload)
            for index in range(flood):
                tos.client.publish(f"{tos.base}/tos/holds", b"{%d" % index, qos=1)
            expected = len(HOSTILE) + flood
            await await_until(
                lambda: len(tos.messages("tos/errors")) >= expected, 30, "an answer to each"
            )
            assert bridge.counters.bad_commands == expected
            assert _tables(sessions) == before
            assert not task.done()
            tos.send("holds", HOLD)
            await await_until(lambda: bridge.counters.commands == 2, 10, "a good one after")
        replies = tos.messages("tos/errors")
        assert len(replies) == expected
        assert all(r["error"] and r["detail"] for r in replies)
        assert all(len(r["detail"]) <= 1000 for r in replies)
    finally:
        tos.close()
        engine.dispose()


async def test_deeply_nested_command_does_not_kill_the_bridge(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = site_config(tmp_path, mosquitto, max_command_bytes=65536)
    engine, sessions = database(config)
    tos = Tos(config)
    bridge = TosBridge(config, sessions)
    try:
        async with running(bridge) as task:
            await await_until(lambda: bridge.ready, 10, "bridge subscribed")
            tos.send("holds", b"[" * 20000)
            tos.send("holds", HOLD)
            await await_until(
                lambda: bridge.counters.commands == 1 or task.done(), 10, "the good command"
            )
            assert not task.done(), "the bridge stopped"
            assert bridge.counters.bad_commands == 1
            assert [r["error"] for r in tos.messages("tos/errors")] == ["malformed"]
    finally:
        tos.close()
        engine.dispose()
