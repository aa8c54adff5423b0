"""TOS commands in: validated, written to the tables, refused ones answered and harmless."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gated import models
from tests.servers import Mosquitto
from tests.test_tos_helpers import SCHEMAS, Tos, await_until, database, running, site_config
from tos_bridge import TosBridge
from tos_bridge.commands import AppointmentCommand, CommandRejected, command_schemas, parse_command

APPOINTMENT = {
    "schema_version": 1,
    "command_id": "c-1",
    "action": "upsert",
    "reference": "APT-1",
    "direction": "in",
    "container_number": "CSQU3054383",
    "company_code": "ACME",
    "truck_epc": "e200abcd",
    "window_start": "2026-12-04T08:00:00Z",
    "window_end": "2026-12-04T10:00:00+00:00",
    "yard_position": "A1-04-02-1",
}


def _tables(sessions: sessionmaker[Session]) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the commands may touch, to show a refused command changed nothing."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with sessions() as session:
        for model in (
            models.Appointment,
            models.Hold,
            models.Truck,
            models.TruckingCompany,
            models.Move,
        ):
            columns = list(model.__table__.columns)
            rows = session.execute(select(*columns).order_by(columns[0])).all()
            tables[model.__tablename__] = [tuple(row) for row in rows]
    return tables


def test_command_schema_files_are_the_models_schemas() -> None:
    for name, schema in command_schemas().items():
        assert json.loads((SCHEMAS / name).read_text()) == schema, name


@pytest.mark.parametrize(
    ("kind", "payload", "code"),
    [
        ("holds", b"{not json", "malformed"),
        ("holds", b"\xff\xfe", "malformed"),
        ("holds", b"[1, 2]", "invalid"),
        ("holds", b" " * 70000, "oversized"),
        ("holds", json.dumps({"schema_version": 1, "action": "place"}).encode(), "invalid"),
        (
            "holds",
            json.dumps(
                {"schema_version": 1, "action": "place", "container_number": "CSQU3054383",
                 "kind": "customs", "colour": "red"}
            ).encode(),
            "invalid",
        ),
        (
            "appointments",
            json.dumps({**APPOINTMENT, "window_start": "2026-12-04T08:00:00"}).encode(),
            "invalid",
        ),
        ("appointments", json.dumps({**APPOINTMENT, "schema_version": 2}).encode(), "invalid"),
        ("appointments", json.dumps({**APPOINTMENT, "container_number": "CSQ1"}).encode(),
         "invalid"),
        ("launch", b"{}", "unknown_topic"),
        ("acks", json.dumps({"schema_version": 1}).encode(), "invalid"),
    ],
)
def test_parse_command_refuses(kind: str, payload: bytes, code: str) -> None:
    with pytest.raises(CommandRejected) as caught:
        parse_command(kind, payload, 65536)
    assert caught.value.code == code


def test_parse_command_accepts_and_normalises() -> None:
    command = parse_command("appointments", json.dumps(APPOINTMENT).encode(), 65536)
    assert command.command_id == "c-1"
    assert isinstance(command, AppointmentCommand)
    assert command.container_number == "CSQU3054383"


async def test_commands_are_written_to_the_tables(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = site_config(tmp_path, mosquitto)
    engine, sessions = database(config)
    tos = Tos(config)
    bridge = TosBridge(config, sessions)
    try:
        async with running(bridge):
            await await_until(lambda: bridge.ready, 10, "bridge subscribed")
            tos.send("appointments", APPOINTMENT)
            tos.send("holds", {"schema_version": 1, "action": "place",
                               "container_number": "CSQU3054383", "kind": "customs",
                               "reason": "X-ray"})
            tos.send("holds", {"schema_version": 1, "action": "place",
                               "container_number": "CSQU3054383", "kind": "customs"})
            tos.send("yard_positions", {"schema_version": 1, "container_number": "CSQU3054383",
                                        "yard_position": "B2-10-03-2"})
            tos.send("trucks", {"schema_version": 1, "action": "upsert", "epc": "e200abcd",
                                "plate": "AB-123", "company_code": "ACME",
                                "company_name": "Acme Haulage"})
            tos.send("trucks", {"schema_version": 1, "action": "upsert", "epc": "E200FFFF",
                                "company_code": "ACME"})
            await await_until(lambda: bridge.counters.commands == 6, 10, "six commands applied")
            with sessions() as session:
                appointment = session.scalars(select(models.Appointment)).one()
                assert appointment.reference == "APT-1"
                assert appointment.truck_epc == "E200ABCD"
                assert appointment.yard_position == "B2-10-03-2"
                assert appointment.window_end is not None
                holds = list(session.scalars(select(models.Hold)))
                assert [(h.kind, h.reason, h.released_at) for h in holds] == [
                    ("customs", "X-ray", None)
                ]
                trucks = list(session.scalars(select(models.Truck).order_by(models.Truck.epc)))
                assert [(t.epc, t.plate, t.company.name if t.company else None)
                        for t in trucks] == [
                    ("E200ABCD", "AB-123", "Acme Haulage"),
                    ("E200FFFF", None, "Acme Haulage"),
                ]

            tos.send("holds", {"schema_version": 1, "action": "release",
                               "container_number": "CSQU3054383", "kind": "customs"})
            tos.send("appointments", {"schema_version": 1, "action": "cancel",
                                      "reference": "APT-1"})
            tos.send("trucks", {"schema_version": 1, "action": "delete", "epc": "E200FFFF"})
            await await_until(lambda: bridge.counters.commands == 9, 10, "three more")
            with sessions() as session:
                assert session.scalars(select(models.Hold)).one().released_at is not None
                assert session.scalars(select(models.Appointment)).one().status == "cancelled"
                assert [t.epc for t in session.scalars(select(models.Truck))] == ["E200ABCD"]
        assert bridge.counters.bad_commands == 0
        assert tos.messages("tos/errors") == []
    finally:
        tos.close()
        engine.dispose()


BAD: list[tuple[str, bytes | str, str, str | None]] = [
    ("holds", b"{\"schema_version\": 1, \"action\": ", "malformed", None),
    ("trucks", b"{\"command_id\": \"big\"," + b" " * 70000 + b"}", "oversized", None),
    ("holds", json.dumps({"schema_version": 1, "command_id": "w1", "action": "place",
                          "container_number": "CSQU3054383", "kind": "police"}), "invalid", "w1"),
    ("appointments", json.dumps({**APPOINTMENT, "command_id": "w2", "direction": None}),
     "invalid", "w2"),
    ("trucks", json.dumps({"schema_version": 1, "command_id": "w3", "action": "upsert",
                           "epc": "not hex"}), "invalid", "w3"),
    ("yard_positions", json.dumps({"schema_version": 1, "command_id": "w4",
                                   "container_number": "MSCU1234565",
                                   "yard_position": "A1"}), "no_appointment", "w4"),
    ("appointments", json.dumps({"schema_version": 1, "command_id": "w5", "action": "cancel",
                                 "reference": "NOPE"}), "unknown_reference", "w5"),
    ("acks", json.dumps({"schema_version": 1, "command_id": "w6",
                         "event_id": "00000000-0000-0000-0000-000000000000"}),
     "unknown_event", "w6"),
    ("teleport", json.dumps({"schema_version": 1, "command_id": "w7"}), "unknown_topic", "w7"),
]


async def test_bad_commands_are_answered_counted_and_change_nothing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = site_config(tmp_path, mosquitto, max_command_bytes=65536)
    engine, sessions = database(config)
    tos = Tos(config)
    bridge = TosBridge(config, sessions)
    try:
        async with running(bridge):
            await await_until(lambda: bridge.ready, 10, "bridge subscribed")
            tos.send("appointments", APPOINTMENT)
            await await_until(lambda: bridge.counters.commands == 1, 10, "setup command")
            before = _tables(sessions)
            for kind, payload, _code, _command_id in BAD:
                tos.send(kind, payload)
            await await_until(
                lambda: len(tos.messages("tos/errors")) == len(BAD), 10, "an answer to each"
            )
            assert bridge.counters.bad_commands == len(BAD)
            assert _tables(sessions) == before
            # the bridge is still there and still applies good commands
            tos.send("holds", {"schema_version": 1, "action": "place",
                               "container_number": "CSQU3054383", "kind": "line"})
            await await_until(lambda: bridge.counters.commands == 2, 10, "a good one after")
        replies = tos.messages("tos/errors")
        assert [(r["error"], r["command_id"]) for r in replies] == [
            (code, command_id) for _kind, _payload, code, command_id in BAD
        ]
        for reply, (kind, _payload, _code, _id) in zip(replies, BAD, strict=True):
            assert reply["topic"].endswith(f"/tos/{kind}")
            assert reply["detail"]
            from tests.test_tos_helpers import validate

            validate(reply)
        # each answer went through the outbox, so a broker outage or a restart cannot lose it
        with sessions() as session:
            queued = session.scalars(
                select(models.OutboxEvent).where(models.OutboxEvent.topic == "tos/errors")
            ).all()
        assert sorted(json.loads(r.payload)["event_id"] for r in queued) == sorted(
            r["event_id"] for r in replies
        )
        assert all(r.published_at is not None for r in queued)
    finally:
        tos.close()
        engine.dispose()


async def test_commands_sent_while_the_gate_is_away_are_applied_when_it_returns(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The gate's persistent session keeps TOS commands at the broker while it is down."""
    config = site_config(tmp_path, mosquitto)
    engine, sessions = database(config)
    tos = Tos(config)
    try:
        first = TosBridge(config, sessions)
        async with running(first):
            await await_until(lambda: first.ready, 10, "first connection")
        tos.send("appointments", APPOINTMENT)
        with sessions() as session:
            assert session.scalars(select(models.Appointment)).first() is None
        second = TosBridge(config, sessions)
        async with running(second):
            await await_until(lambda: second.counters.commands == 1, 10, "queued command")
        with sessions() as session:
            assert session.scalars(select(models.Appointment)).one().reference == "APT-1"
    finally:
        tos.close()
        engine.dispose()


async def test_a_command_that_fails_unexpectedly_is_answered_and_the_bridge_goes_on(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in applying one command must not stop the bridge (the command, never
    acknowledged, would otherwise come back at every restart)."""
    import tos_bridge.inbound

    real = tos_bridge.inbound.apply_command

    def buggy(session: Session, command: Any, now: Any) -> None:
        if getattr(command, "reference", None) == "BUG":
            raise KeyError("a bug")
        real(session, command, now)

    monkeypatch.setattr(tos_bridge.inbound, "apply_command", buggy)
    config = site_config(tmp_path, mosquitto)
    engine, sessions = database(config)
    tos = Tos(config)
    bridge = TosBridge(config, sessions)
    try:
        async with running(bridge) as task:
            await await_until(lambda: bridge.ready, 10, "bridge subscribed")
            tos.send("appointments", {**APPOINTMENT, "reference": "BUG", "command_id": "b1"})
            tos.send("appointments", APPOINTMENT)
            await await_until(lambda: bridge.counters.commands == 1, 10, "the next command")
            assert not task.done()
        [reply] = tos.messages("tos/errors")
        assert (reply["error"], reply["detail"]) == ("not_applied", "KeyError")
        with sessions() as session:
            assert [a.reference for a in session.scalars(select(models.Appointment))] == ["APT-1"]
    finally:
        tos.close()
        engine.dispose()
