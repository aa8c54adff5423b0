"""Clerk actions on a real SQLite file: checks, audit log, outbox events, moves, lane effects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gated.config import SiteConfig
from gated.models import AuditLog, GateTransaction, Move, OutboxEvent
from gated.resolution import ActionRefused, Actor, Resolver, check_container_number
from tests.kiosk_seed import make_config, make_database, seed_trouble

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"
TRANSACTION_SCHEMA = Draft202012Validator(
    json.loads((SCHEMAS / "transaction.json").read_text()), format_checker=FormatChecker()
)
CLERK = Actor("clerk1", "clerk")
SUPERVISOR = Actor("super1", "supervisor")
VIEWER = Actor("view1", "viewer")


class RecordingEffects:
    """Records what the kiosk asked the lane to do; can be told to fail like a lost PLC."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail_barrier = False

    async def open_barrier(self, lane: str, transaction_id: int) -> None:
        if self.fail_barrier:
            raise ConnectionError(f"lane {lane}: PLC not connected")
        self.calls.append(("open_barrier", (lane, transaction_id)))

    async def direct_to_inspection(self, lane: str, transaction_id: int) -> None:
        self.calls.append(("direct_to_inspection", (lane, transaction_id)))

    async def print_tickets(self, lane: str, transaction_id: int) -> None:
        self.calls.append(("print_tickets", (lane, transaction_id)))

    async def rerun_ocr(self, transaction_id: int) -> None:
        self.calls.append(("rerun_ocr", transaction_id))


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[SiteConfig, sessionmaker[Session]]]:
    config = make_config(tmp_path)
    engine, sessions = make_database(config)
    yield config, sessions
    engine.dispose()


def _seed(sessions: sessionmaker[Session], config: SiteConfig, **kwargs: Any) -> int:
    with sessions() as session, session.begin():
        return seed_trouble(session, config, **kwargs)


def _outbox(sessions: sessionmaker[Session], topic: str) -> list[dict[str, Any]]:
    with sessions() as session:
        rows = session.scalars(
            select(OutboxEvent).where(OutboxEvent.topic == topic).order_by(OutboxEvent.id)
        )
        return [json.loads(row.payload) for row in rows]


def _audit(sessions: sessionmaker[Session]) -> list[AuditLog]:
    with sessions() as session:
        return list(session.scalars(select(AuditLog).order_by(AuditLog.id)))


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("TGHU7870036", "TGHU7870036"), ("tghu 787003-6", "TGHU7870036"), ("FFFZ0163937", None)],
)
def test_valid_numbers_are_normalised(typed: str, expected: str | None) -> None:
    assert check_container_number(typed) == (expected or typed)


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("TGHU7870035", "must be 6, not 5"),
        ("TGHU787003", "has 10 characters"),
        ("TGH07870036", "not a container number"),
        ("", "no container number"),
        ("MSCU\u0661\u0662\u0663\u0664\u0665\u0666\u0667", "A-Z and the digits 0-9 only"),
        ("ＭＳＣＵ1234565", "A-Z and the digits 0-9 only"),
    ],
)
def test_invalid_numbers_say_why(typed: str, words: str) -> None:
    with pytest.raises(ActionRefused, match=words):
        check_container_number(typed)


async def test_correct_then_approve_queues_move_and_opens_barrier(site: Any) -> None:
    config, sessions = site
    transaction_id = _seed(sessions, config)
    effects = RecordingEffects()
    resolver = Resolver(config, sessions, effects)

    await resolver.correct_container(CLERK, transaction_id, 0, "beau 265693 1", None)
    outcome = await resolver.approve(CLERK, transaction_id, "check digit read from AH image")

    assert outcome.effect_errors == ()
    assert effects.calls == [
        ("open_barrier", ("1", transaction_id)),
        ("print_tickets", ("1", transaction_id)),
    ]
    with sessions() as session:
        transaction = session.get_one(GateTransaction, transaction_id)
        assert (transaction.state, transaction.decision) == ("proceed", "PROCEED")
        assert transaction.gate_pass_number == "G1-000001"
        assert transaction.containers[0].container_number == "BEAU2656931"
        assert transaction.containers[0].source == "clerk"
        move = session.scalars(select(Move)).one()
    assert (move.kind, move.container_number, move.to_location) == (
        "gate_in",
        "BEAU2656931",
        "A1-12-03-2",
    )
    assert move.acked_at is None
    moves = _outbox(sessions, "moves")
    assert [m["event_id"] for m in moves] == [move.event_id] == list(outcome.move_event_ids)
    assert moves[0]["move"]["container_number"] == "BEAU2656931"
    updates = _outbox(sessions, "transactions")
    assert [u["action"]["kind"] for u in updates] == ["correct_container", "approve"]
    assert updates[1]["kind"] == "update"
    assert updates[1]["transaction"]["state"] == "proceed"
    assert updates[1]["transaction"]["containers"][0]["source"] == "clerk"
    for update in updates:
        TRANSACTION_SCHEMA.validate(update)
    assert updates[1]["action"]["reason"] == "check digit read from AH image"


async def test_wrong_check_digit_changes_nothing_but_is_audited(site: Any) -> None:
    config, sessions = site
    transaction_id = _seed(sessions, config, read="BEAU2656931")
    resolver = Resolver(config, sessions, RecordingEffects())

    with pytest.raises(ActionRefused, match="must be 1, not 7"):
        await resolver.correct_container(CLERK, transaction_id, 0, "BEAU2656937", "typo")

    with sessions() as session:
        transaction = session.get_one(GateTransaction, transaction_id)
        assert transaction.containers[0].container_number == "BEAU2656931"
    audit = _audit(sessions)
    assert [(a.action, a.username) for a in audit] == [("correct_container_rejected", "clerk1")]
    assert audit[0].after == {"attempt": "BEAU2656937"}
    assert _outbox(sessions, "transactions") == []


async def test_approve_needs_reason_and_valid_numbers(site: Any) -> None:
    config, sessions = site
    transaction_id = _seed(sessions, config)
    effects = RecordingEffects()
    resolver = Resolver(config, sessions, effects)

    with pytest.raises(ActionRefused, match="reason is required"):
        await resolver.approve(CLERK, transaction_id, "  ")
    with pytest.raises(ActionRefused, match="front container: no container number"):
        await resolver.approve(CLERK, transaction_id, "looks fine")
    assert effects.calls == []
    assert _audit(sessions) == []
    with sessions() as session:
        assert session.scalars(select(Move)).all() == []


async def test_viewer_cannot_act(site: Any) -> None:
    config, sessions = site
    transaction_id = _seed(sessions, config, read="BEAU2656931")
    effects = RecordingEffects()
    resolver = Resolver(config, sessions, effects)
    with pytest.raises(ActionRefused, match="may not act"):
        await resolver.approve(VIEWER, transaction_id, "I am only watching")
    assert effects.calls == []
    assert _audit(sessions) == []


async def test_refuse_and_inspection_and_rerun_are_audited(site: Any) -> None:
    config, sessions = site
    first = _seed(sessions, config)
    second = _seed(sessions, config, lane="2", truck_epc="E200AAAA")
    effects = RecordingEffects()
    resolver = Resolver(config, sessions, effects)

    await resolver.rerun_ocr(CLERK, first)
    await resolver.refuse(CLERK, first, "no booking, driver sent back")
    await resolver.send_to_inspection(CLERK, second, "seal broken")
    with pytest.raises(ActionRefused, match="is closed"):
        await resolver.approve(CLERK, first, "changed my mind")
    with pytest.raises(ActionRefused, match="is inspection"):
        await resolver.approve(CLERK, second, "clerks cannot release inspection")

    assert effects.calls == [("rerun_ocr", first), ("direct_to_inspection", ("2", second))]
    audit = _audit(sessions)
    assert [(a.action, a.transaction_id) for a in audit] == [
        ("rerun_ocr", first),
        ("refuse", first),
        ("send_to_inspection", second),
    ]
    assert audit[1].before["state"] == "trouble"
    assert audit[1].after["state"] == "closed"
    assert audit[1].reason == "no booking, driver sent back"
    assert all(a.at is not None and a.username == "clerk1" for a in audit)
    updates = _outbox(sessions, "transactions")
    assert [u["action"]["reason"] for u in updates] == [
        None,
        "no booking, driver sent back",
        "seal broken",
    ]
    for update in updates:
        TRANSACTION_SCHEMA.validate(update)


async def test_supervisor_releases_inspection_and_reprints(site: Any) -> None:
    config, sessions = site
    transaction_id = _seed(sessions, config, read="BEAU2656931")
    effects = RecordingEffects()
    resolver = Resolver(config, sessions, effects)
    await resolver.send_to_inspection(CLERK, transaction_id, None)
    await resolver.approve(SUPERVISOR, transaction_id, "VACIS image clean, released")
    await resolver.reprint(CLERK, transaction_id)
    assert [c[0] for c in effects.calls] == [
        "direct_to_inspection",
        "open_barrier",
        "print_tickets",
        "print_tickets",
    ]
    assert [a.action for a in _audit(sessions)][-2:] == ["approve", "print_tickets"]


async def test_barrier_failure_is_reported_and_stops_printing(site: Any) -> None:
    config, sessions = site
    transaction_id = _seed(sessions, config, read="BEAU2656931")
    effects = RecordingEffects()
    effects.fail_barrier = True
    resolver = Resolver(config, sessions, effects)
    outcome = await resolver.approve(CLERK, transaction_id, "read ok on LF image")
    assert outcome.effect_errors == ("ConnectionError: lane 1: PLC not connected",)
    assert effects.calls == []
    # the decision stays on record: the move still goes to the TOS
    assert len(_outbox(sessions, "moves")) == 1


async def test_two_containers_out_gate_give_two_gate_out_moves(site: Any) -> None:
    config, sessions = site
    transaction_id = _seed(sessions, config, lane="2", read="BEAU2656931")
    resolver = Resolver(config, sessions, RecordingEffects())

    with pytest.raises(ActionRefused, match="position is 0"):
        await resolver.correct_container(CLERK, transaction_id, 2, "TGHU7870036", None)
    await resolver.correct_container(CLERK, transaction_id, 1, "TGHU7870036", "rear read on AS")
    outcome = await resolver.approve(CLERK, transaction_id, "both numbers read on images")

    with sessions() as session:
        moves = session.scalars(select(Move).order_by(Move.id)).all()
        transaction = session.get_one(GateTransaction, transaction_id)
        slots = [(c.position, c.container_number, c.source) for c in transaction.containers]
    assert slots == [(0, "BEAU2656931", "ocr"), (1, "TGHU7870036", "clerk")]
    assert [(m.kind, m.container_number) for m in moves] == [
        ("gate_out", "BEAU2656931"),
        ("gate_out", "TGHU7870036"),
    ]
    assert list(outcome.move_event_ids) == [m.event_id for m in moves]


async def test_a_lane_that_never_answers_is_reported(site: Any) -> None:
    config, sessions = site
    transaction_id = _seed(sessions, config, read="BEAU2656931")

    class StuckLane(RecordingEffects):
        async def open_barrier(self, lane: str, transaction_id: int) -> None:
            await asyncio.Event().wait()

    effects = StuckLane()
    resolver = Resolver(config, sessions, effects, effect_timeout_s=0.05)
    outcome = await resolver.approve(CLERK, transaction_id, "read on image")
    assert outcome.effect_errors == ("no answer from the lane within 0.05 s",)
    assert effects.calls == []  # no ticket for a barrier that did not confirm


async def test_a_release_the_lane_refuses_is_not_recorded(site: Any) -> None:
    config, sessions = site
    transaction_id = _seed(sessions, config, read="BEAU2656931")

    class CarefulLane(RecordingEffects):
        def check_release(self, lane: str, transaction_id: int) -> None:
            raise RuntimeError("no valid credential presented for this visit")

    effects = CarefulLane()
    resolver = Resolver(config, sessions, effects)
    with pytest.raises(ActionRefused, match="lane 1 will not let this truck through: no valid"):
        await resolver.approve(CLERK, transaction_id, "read on image")
    assert effects.calls == []
    assert _audit(sessions) == []
    assert _outbox(sessions, "moves") == []
    with sessions() as session:
        assert session.get_one(GateTransaction, transaction_id).state == "trouble"


async def test_control_characters_are_no_reason(site: Any) -> None:
    config, sessions = site
    transaction_id = _seed(sessions, config)
    resolver = Resolver(config, sessions, RecordingEffects())
    with pytest.raises(ActionRefused, match="reason is required"):
        await resolver.refuse(CLERK, transaction_id, "\x00\x00\x1b\u202e\x07 ")
    await resolver.refuse(CLERK, transaction_id, "no\x00 booking\u202e")
    assert _audit(sessions)[0].reason == "no booking"
