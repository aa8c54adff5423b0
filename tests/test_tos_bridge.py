"""The TOS bridge against a real mosquitto: events out, acks in, availability, resend."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gated import models
from gated.domain import DeviceHealth, utcnow
from gated.outbox import backlog, count_moves_awaiting_ack, moves_awaiting_ack
from tests.servers import Mosquitto
from tests.test_tos_helpers import (
    Tos,
    await_until,
    database,
    running,
    site_config,
    validate,
    write_moves,
)
from tos_bridge import TosBridge


def _published(sessions, event_ids: list[str]) -> int:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(models.OutboxEvent)
                .where(models.OutboxEvent.event_id.in_(event_ids))
                .where(models.OutboxEvent.published_at.is_not(None))
            )
            or 0
        )


async def test_moves_are_published_in_order_acked_and_marked(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = site_config(tmp_path, mosquitto)
    engine, sessions = database(config)
    tos = Tos(config)
    health: list[DeviceHealth] = []
    bridge = TosBridge(config, sessions, on_health=health.append)
    try:
        async with running(bridge):
            ids = write_moves(sessions, config.site_id, 60, lanes=("1", "2", "3"))
            await await_until(lambda: len(tos.seen) == 60, 10, "60 moves at the TOS")
            await await_until(lambda: bridge.counters.acked == 60, 10, "60 TOS acks")
            await await_until(lambda: _published(sessions, ids) == 60, 5, "rows marked")
            with sessions() as session:
                assert count_moves_awaiting_ack(session) == 0
                assert backlog(session) == 0
                moves = list(session.scalars(select(models.Move)))
            assert all(m.acked_at is not None and m.send_count == 1 for m in moves)
        for lane in ("1", "2", "3"):
            assert tos.first_order[lane] == ids[int(lane) - 1 :: 3]
        assert tos.deliveries == 60
        assert tos.user_property_ok
        for _topic, payload in tos.payloads:
            validate(payload)
        assert [h.up for h in health] == [True]
        assert bridge.counters.published == 60
        assert bridge.counters.connected == 0
        availability = [p for t, p, r in tos.raw if t == "availability"]
        assert availability[-2:] == [b"online", b"offline"]
    finally:
        tos.close()
        engine.dispose()


async def test_availability_is_retained_and_the_will_says_offline(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = site_config(tmp_path, mosquitto)
    engine, sessions = database(config)
    bridge = TosBridge(config, sessions)
    try:
        async with running(bridge):
            await await_until(lambda: bridge.counters.connected == 1, 10, "bridge connected")
            late = Tos(config, client_id="late-dashboard", persistent=False)
            try:
                await await_until(
                    lambda: ("availability", b"online", True) in late.raw, 5, "retained online"
                )
            finally:
                late.close()
        later = Tos(config, client_id="later-dashboard", persistent=False)
        try:
            await await_until(
                lambda: ("availability", b"offline", True) in later.raw, 5, "retained offline"
            )
        finally:
            later.close()
    finally:
        engine.dispose()


async def test_unacknowledged_move_is_sent_again_with_the_same_event_id(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = site_config(tmp_path, mosquitto, tos_ack_timeout_s=0.3)
    engine, sessions = database(config)
    # this TOS loses the first delivery of every other move, as a slow TOS behind a full
    # broker queue would
    losing: set[str] = set()
    tos = Tos(config, ignore_first=lambda event_id: event_id in losing)
    bridge = TosBridge(config, sessions)
    try:
        async with running(bridge):
            ids = write_moves(sessions, config.site_id, 10, lanes=("1",), per_commit=10)
            losing.update(ids[::2])
            await await_until(lambda: bridge.counters.acked == 10, 15, "all moves acked")
        assert bridge.counters.resent >= 5
        assert tos.ignored == set(ids[::2])
        with sessions() as session:
            moves = {m.event_id: m for m in session.scalars(select(models.Move))}
        for event_id in ids[::2]:
            assert moves[event_id].send_count >= 2
        for event_id in ids[1::2]:
            assert moves[event_id].send_count == 1
        resent = [p for t, p in tos.payloads if t == "moves" and p["event_id"] in losing]
        assert len(resent) == 5
        for payload in resent:
            validate(payload)
    finally:
        tos.close()
        engine.dispose()


async def test_moves_waiting_for_acknowledgement_are_listed_for_the_kiosk(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = site_config(tmp_path, mosquitto, tos_ack_timeout_s=600)
    engine, sessions = database(config)
    tos = Tos(config, ack_moves=False)
    bridge = TosBridge(config, sessions)
    try:
        async with running(bridge):
            ids = write_moves(sessions, config.site_id, 4, lanes=("1",))
            await await_until(lambda: len(tos.seen) == 4, 10, "moves delivered")
            with sessions() as session:
                waiting = moves_awaiting_ack(session)
                assert [m.event_id for m in waiting] == ids
                assert count_moves_awaiting_ack(session) == 4
            tos.send("acks", {"schema_version": 1, "event_ids": ids[:3]})
            await await_until(lambda: bridge.counters.acked == 3, 5, "three acks")
            with sessions() as session:
                assert [m.event_id for m in moves_awaiting_ack(session)] == ids[3:]
        assert bridge.counters.resent == 0
    finally:
        tos.close()
        engine.dispose()


async def test_resend_follows_the_clock(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Moving the clock past the ack timeout resends; before it, nothing is resent."""
    config = site_config(tmp_path, mosquitto, tos_ack_timeout_s=60)
    engine, sessions = database(config)
    offset = timedelta(0)
    tos = Tos(config, ack_moves=False)
    bridge = TosBridge(config, sessions, clock=lambda: utcnow() + offset)
    try:
        async with running(bridge):
            ids = write_moves(sessions, config.site_id, 3, lanes=("1",))
            await await_until(lambda: tos.deliveries == 3, 10, "first delivery")
            await await_until(lambda: bridge.counters.published == 3, 5, "marked sent")
            assert bridge.counters.resent == 0
            offset = timedelta(seconds=61)
            await await_until(lambda: tos.deliveries == 6, 20, "resend after the timeout")
            assert bridge.counters.resent == 3
        assert [p["event_id"] for t, p in tos.payloads if t == "moves"] == ids
    finally:
        tos.close()
        engine.dispose()


def test_event_payloads_match_their_schemas_without_a_broker() -> None:
    from gated.events import lane_state_event, move_event, transaction_event
    from gated.outbox import envelope

    tx = models.GateTransaction(
        uuid="0b7f2d1e-7a57-4d7e-9f6a-1c2d3e4f5a6b",
        lane="1",
        direction="in",
        state="proceed",
        decision="PROCEED",
        reasons=[{"code": "ok", "text": "all checks passed", "blocking": False}],
        arrived_at=utcnow(),
        truck_epc="E200ABCD",
        gross_weight_kg=31000.0,
    )
    tx.containers = [
        models.TransactionContainer(
            position=0, container_number="CSQU3054383", size_type="22G1", confidence=0.97,
            source="ocr", images=["a.jpg"],
        )
    ]
    tx.reads = [
        models.ContainerReadRow(
            camera="AH", image_path="a.jpg", container_number="CSQU3054383", confidence=0.97
        )
    ]
    tx.scans = [
        models.RadiationScanRow(
            lane="1", started_at=utcnow(), complete=True, monitor_gamma_alarm=False,
            monitor_neutron_alarm=False, gamma_alarm=False, neutron_alarm=False,
            peak_gamma_sigma=[1.2], peak_neutron_sigma=[0.3], faults=[],
        )
    ]
    tx.credential_checks = [
        models.CredentialCheckRow(valid=True, reasons=[], credential_last4="1234")
    ]
    move = models.Move(
        event_id="5f3c1e7a-1b2c-4d5e-8f90-a1b2c3d4e5f6", kind="gate_in", lane="1",
        container_number="CSQU3054383", occurred_at=utcnow(), details={},
    )
    bodies = [
        transaction_event(tx, "new"),
        transaction_event(tx, "update", {"kind": "release", "by": "clerk", "role": "clerk"}),
        move_event(move, tx),
        lane_state_event("idle", devices=[DeviceHealth(lane="1", device="plc", up=True)]),
    ]
    for body in bodies:
        payload = json.loads(json.dumps(envelope(site="demo", lane="1", body=body)))
        validate(payload)


async def test_mqtt_3_1_1_works_and_the_bridge_ignores_its_own_error_replies(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """MQTT 3.1.1 has no user properties and no no-local subscriptions."""
    config = site_config(tmp_path, mosquitto, protocol="3.1.1")
    engine, sessions = database(config)
    tos = Tos(config, protocol="3.1.1")
    bridge = TosBridge(config, sessions)
    try:
        async with running(bridge):
            await await_until(lambda: bridge.ready, 10, "bridge subscribed")
            ids = write_moves(sessions, config.site_id, 20, lanes=("1", "2"))
            await await_until(lambda: bridge.counters.acked == 20, 10, "moves acked")
            tos.send("holds", b"not json")
            await await_until(lambda: len(tos.messages("tos/errors")) == 1, 10, "error reply")
            # the reply comes back to the bridge's own subscription; it must not answer it
            tos.send("holds", {"schema_version": 1, "action": "place",
                               "container_number": "CSQU3054383", "kind": "line"})
            await await_until(lambda: bridge.counters.commands == 21, 10, "a later command")
        assert bridge.counters.bad_commands == 1
        assert len(tos.messages("tos/errors")) == 1
        assert (tos.first_order["1"], tos.first_order["2"]) == (ids[0::2], ids[1::2])
    finally:
        tos.close()
        engine.dispose()


async def test_a_bridge_run_again_after_a_stop_sends_what_is_left(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """A supervisor restarting the service calls run() again on the same bridge."""
    config = site_config(tmp_path, mosquitto)
    engine, sessions = database(config)
    tos = Tos(config)
    bridge = TosBridge(config, sessions)
    try:
        async with running(bridge):
            first = write_moves(sessions, config.site_id, 10, lanes=("1",))
            await await_until(lambda: bridge.counters.acked == 10, 10, "first run")
        second = write_moves(sessions, config.site_id, 10, lanes=("1",), start=10)
        async with running(bridge):
            await await_until(lambda: bridge.counters.acked == 20, 10, "second run")
        assert tos.first_order["1"] == first + second
    finally:
        tos.close()
        engine.dispose()


async def test_a_row_committed_late_behind_the_cursor_is_still_published(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """On PostgreSQL a transaction can commit after one with a higher id was published."""
    import json as json_module

    from gated.outbox import envelope

    config = site_config(tmp_path, mosquitto)
    engine, sessions = database(config)
    tos = Tos(config, ack_moves=False)
    bridge = TosBridge(config, sessions)

    def row(row_id: int) -> models.OutboxEvent:
        body: dict[str, object] = {"type": "lane_state", "state": "idle", "transaction_uuid": None,
                "detail": "", "devices": []}
        payload = envelope(site=config.site_id, lane="1", body=body)
        return models.OutboxEvent(
            id=row_id, event_id=payload["event_id"], topic="lanes/1/state", lane="1",
            payload=json_module.dumps(payload), retain=False,
        )

    try:
        async with running(bridge):
            with sessions.begin() as session:
                session.add_all([row(i) for i in range(11, 21)])
            await await_until(lambda: bridge.counters.published == 10, 10, "ids 11 to 20")
            with sessions.begin() as session:
                late = row(5)
                session.add(late)
            await await_until(lambda: bridge.counters.published == 11, 15, "the late id 5")
        assert tos.first_order["1"][-1] == late.event_id
        for _topic, payload in tos.payloads:
            validate(payload)
    finally:
        tos.close()
        engine.dispose()


async def test_a_locked_database_is_waited_out_and_nothing_is_lost(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """Another writer holds the database past the busy timeout: the bridge's writes fail,
    it retries with back-off, and once the lock goes every row is marked, every move acked."""
    import asyncio
    import sqlite3

    caplog.set_level("INFO", logger="tos_bridge")
    config = site_config(tmp_path, mosquitto, tos_ack_timeout_s=1.0)
    engine, sessions = database(config)
    tos = Tos(config)
    bridge = TosBridge(config, sessions)
    blocker = sqlite3.connect(str(tmp_path / "gated.db"), isolation_level=None)
    try:
        async with running(bridge) as task:
            await await_until(lambda: bridge.ready, 10, "bridge connected")
            ids = write_moves(sessions, config.site_id, 50, lanes=("1",), per_commit=50)
            blocker.execute("BEGIN EXCLUSIVE")
            await await_until(lambda: len(tos.seen) == 50, 10, "moves delivered while locked")
            await asyncio.sleep(6.0)  # past the 5 s busy timeout of the bridge's writes
            blocker.execute("ROLLBACK")
            await await_until(lambda: _published(sessions, ids) == 50, 30, "rows marked")
            await await_until(lambda: bridge.counters.acked == 50, 30, "moves acked")
            assert not task.done()
        with sessions() as session:
            assert count_moves_awaiting_ack(session) == 0
        assert "database unavailable to the TOS bridge" in caplog.text
        assert "TOS bridge database recovered" in caplog.text
    finally:
        blocker.close()
        tos.close()
        engine.dispose()


async def test_a_row_mqtt_cannot_carry_is_skipped_and_the_rest_flows(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    from gated.outbox import add_event

    config = site_config(tmp_path, mosquitto)
    engine, sessions = database(config)
    tos = Tos(config, ack_moves=False)
    bridge = TosBridge(config, sessions)
    try:
        with sessions() as session, pytest.raises(ValueError):
            add_event(session, site="demo", topic="lanes/#/state", lane="1", body={})
        with sessions.begin() as session:  # written past add_event, as a buggy writer might
            session.add(models.OutboxEvent(event_id="poison", topic="lanes/+/state",
                                           lane="1", payload="{}", retain=False))
        async with running(bridge) as task:
            ids = write_moves(sessions, config.site_id, 5, lanes=("1",))
            await await_until(lambda: len(tos.seen) == 5, 10, "the moves after it")
            assert not task.done()
        assert tos.first_order["1"] == ids
        with sessions() as session:
            assert backlog(session) == 1
    finally:
        tos.close()
        engine.dispose()


def test_a_credential_check_event_matches_its_schema(tmp_path: Path) -> None:
    """The lane's credential events (gated.credentials) are documented too."""
    from gated.credentials import record_check
    from gated.domain import CredentialCheck, Reason
    from gated.models import OutboxEvent
    from tests.test_tos_helpers import site_config as _site

    class _NoBroker:
        host = "127.0.0.1"
        port = 1

    config = _site(tmp_path, _NoBroker())
    engine, sessions = database(config)
    try:
        with sessions.begin() as session:
            for check in (
                CredentialCheck(valid=True, reasons=(), fascn_hash="ab" * 32,
                                credential_last4="0042", biometric_status="match"),
                CredentialCheck(valid=False, reasons=(Reason("card_canceled", "on the CCL"),),
                                fascn_hash=None, credential_last4=None),
            ):
                record_check(session, check, site=config.site_id, lane="1")
        with sessions() as session:
            rows = list(session.scalars(select(OutboxEvent)))
        assert [row.topic for row in rows] == ["lanes/1/credential"] * 2
        for row in rows:
            validate(json.loads(row.payload), topic=row.topic)
            assert "ab" * 32 not in row.payload
    finally:
        engine.dispose()
