"""Clerk actions on a gate transaction: correct, re-read, approve, refuse, send to inspection.

Each action is checked, written to the audit log (who, when, before, after, why) and reported
to the TOS through the outbox, all in one database transaction. Only after that commit does the
lane carry out the physical side through `LaneEffects` (barrier, printer, inspection lights):
a crash in between leaves a decision on record and a closed barrier, which is the safe side.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from stdnum import iso6346
from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength, ValidationError

from gated.config import SiteConfig
from gated.domain import Decision, TransactionState, utcnow
from gated.effects import LaneEffects
from gated.events import queue_transaction_event
from gated.models import AuditLog, GateTransaction, TransactionContainer
from gated.transactions import resolve

_LOGGER = logging.getLogger(__name__)

ACTING_ROLES = frozenset({"clerk", "supervisor"})
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Actor:
    """Who acts: a kiosk user name and role."""

    username: str
    role: str


class ActionRefused(Exception):
    """The action was not applied; the message says why, in words a clerk understands."""


@dataclass(frozen=True)
class Outcome:
    """What an applied action did, and which lane effects failed (if any)."""

    transaction_id: int
    action: str
    message: str
    move_event_ids: tuple[str, ...] = ()
    effect_errors: tuple[str, ...] = ()


# --- checks -------------------------------------------------------------------------------------


def check_container_number(text: str) -> str:
    """The ISO 6346 number in `text` (spaces, dashes and case forgiven), or ActionRefused."""
    number = re.sub(r"[\s\-./]", "", text or "").upper()
    if not number:
        raise ActionRefused("no container number was given")
    if not re.fullmatch(r"[A-Z0-9]{1,32}", number):
        # only ASCII: stdnum would take any Unicode digit (Arabic-Indic, full-width) as one
        shown = number[:32].encode("ascii", "replace").decode()
        raise ActionRefused(
            f"{shown} is not a container number: use the letters A-Z and the digits 0-9 only"
        )
    try:
        return str(iso6346.validate(number))
    except InvalidLength:
        raise ActionRefused(
            f"{number} has {len(number)} characters; a container number has 11 "
            "(4 letters, 6 digits, 1 check digit)"
        ) from None
    except InvalidChecksum:
        expected = iso6346.calc_check_digit(number[:10])
        raise ActionRefused(
            f"check digit of {number} is wrong: for {number[:10]} it must be {expected}, "
            f"not {number[10]}; check the number on the image"
        ) from None
    except (InvalidFormat, ValidationError):
        raise ActionRefused(
            f"{number} is not a container number: it needs 3 owner letters, a category "
            "letter (U, J or Z), 6 digits and a check digit"
        ) from None


def _check_reason(reason: str | None, required: bool) -> str | None:
    # control and format characters (NUL, escapes, bidi overrides) are no part of a reason
    printable = "".join(
        " " if unicodedata.category(char)[0] == "C" else char for char in reason or ""
    )
    text = " ".join(printable.split())
    if len(text) > MAX_REASON_CHARS:
        raise ActionRefused(f"the reason is longer than {MAX_REASON_CHARS} characters")
    if required and len(text) < 3:
        raise ActionRefused("a reason is required for this action")
    return text or None


def _check_actor(actor: Actor) -> None:
    if actor.role not in ACTING_ROLES:
        raise ActionRefused(f"user {actor.username} ({actor.role}) may not act on transactions")


def _load(session: Session, transaction_id: int) -> GateTransaction:
    query = select(GateTransaction).where(GateTransaction.id == transaction_id).with_for_update()
    transaction = session.scalars(query).one_or_none()
    if transaction is None:
        raise ActionRefused(f"transaction {transaction_id} does not exist")
    return transaction


def _check_open(transaction: GateTransaction, actor: Actor) -> None:
    """Clerks act on trouble; supervisors also release or refuse a truck held for inspection."""
    allowed = {TransactionState.TROUBLE.value}
    if actor.role == "supervisor":
        allowed.add(TransactionState.INSPECTION.value)
    if transaction.state not in allowed:
        raise ActionRefused(
            f"transaction {transaction.id} is {transaction.state}; "
            f"only {' or '.join(sorted(allowed))} transactions can be changed"
        )


# --- records ------------------------------------------------------------------------------------


def snapshot(transaction: GateTransaction) -> dict[str, Any]:
    """The parts of a transaction a clerk can change, for the audit log and the TOS."""
    return {
        "state": transaction.state,
        "decision": transaction.decision,
        "containers": [
            {
                "position": c.position,
                "container_number": c.container_number,
                "size_type": c.size_type,
                "source": c.source,
            }
            for c in transaction.containers
        ],
        "gate_pass_number": transaction.gate_pass_number,
        "resolved_by": transaction.resolved_by,
    }


def _record(
    session: Session,
    config: SiteConfig,
    actor: Actor,
    action: str,
    transaction: GateTransaction,
    before: dict[str, Any],
    reason: str | None,
) -> None:
    """Audit row and TOS update event for one applied action (caller commits both)."""
    after = snapshot(transaction)
    session.add(
        AuditLog(
            at=utcnow(),
            username=actor.username,
            role=actor.role,
            action=action,
            transaction_id=transaction.id,
            before=before,
            after=after,
            reason=reason,
        )
    )
    queue_transaction_event(
        session,
        config.site_id,
        transaction,
        "update",
        action={"kind": action, "by": actor.username, "role": actor.role, "reason": reason},
    )


# --- the actions, in the caller's database transaction -------------------------------------------


def correct_container(
    session: Session,
    config: SiteConfig,
    actor: Actor,
    transaction_id: int,
    position: int,
    number: str,
    reason: str | None = None,
) -> Outcome:
    """Set the container number of one chassis slot (0 front, 1 rear) to a valid number."""
    _check_actor(actor)
    why = _check_reason(reason, required=False)
    transaction = _load(session, transaction_id)
    _check_open(transaction, actor)
    if position not in (0, 1):
        raise ActionRefused("the container position is 0 (front) or 1 (rear)")
    valid = check_container_number(number)

    before = snapshot(transaction)
    slot = next((c for c in transaction.containers if c.position == position), None)
    if slot is None:
        slot = TransactionContainer(position=position, images=[])
        transaction.containers.append(slot)
    slot.container_number = valid
    slot.source = "clerk"
    slot.confidence = 1.0
    session.flush()
    _record(session, config, actor, "correct_container", transaction, before, why)
    return Outcome(transaction.id, "correct_container", f"container set to {valid}")


def record_rejected_correction(
    session: Session, actor: Actor, transaction_id: int, attempt: str, error: str
) -> None:
    """Keep a refused correction in the audit log too: it shows what the clerk typed."""
    session.add(
        AuditLog(
            at=utcnow(),
            username=actor.username,
            role=actor.role,
            action="correct_container_rejected",
            transaction_id=transaction_id,
            before={},
            after={"attempt": attempt[:32]},
            reason=error,
        )
    )


def rerun_ocr(
    session: Session, config: SiteConfig, actor: Actor, transaction_id: int
) -> Outcome:
    """Ask the lane to read the stored images again (the reads land in the database)."""
    _check_actor(actor)
    transaction = _load(session, transaction_id)
    _check_open(transaction, actor)
    before = snapshot(transaction)
    _record(session, config, actor, "rerun_ocr", transaction, before, None)
    return Outcome(transaction.id, "rerun_ocr", "images sent to OCR again")


def approve(
    session: Session, config: SiteConfig, actor: Actor, transaction_id: int, reason: str
) -> Outcome:
    """Let the truck through: every container needs a valid number; queues the moves."""
    _check_actor(actor)
    why = _check_reason(reason, required=True)
    transaction = _load(session, transaction_id)
    _check_open(transaction, actor)
    for container in transaction.containers:
        try:
            check_container_number(container.container_number or "")
        except ActionRefused as exc:
            slot = "front" if container.position == 0 else "rear"
            raise ActionRefused(f"{slot} container: {exc}; correct it first") from None

    before = snapshot(transaction)
    now = utcnow()
    transaction.state = TransactionState.PROCEED.value
    transaction.decision = Decision.PROCEED.value
    transaction.decided_at = now
    transaction.details = {**(transaction.details or {}), "resolution": "approved"}
    moves = resolve(
        session, transaction, site=config.site_id, gate=config.gate_id, resolved_by=actor.username
    )
    session.flush()
    _record(session, config, actor, "approve", transaction, before, why)
    event_ids = tuple(move.event_id for move in moves)
    return Outcome(
        transaction.id,
        "approve",
        f"approved, gate pass {transaction.gate_pass_number}",
        move_event_ids=event_ids,
    )


def refuse(
    session: Session, config: SiteConfig, actor: Actor, transaction_id: int, reason: str
) -> Outcome:
    """Turn the truck away: the barrier stays closed and the transaction is closed."""
    _check_actor(actor)
    why = _check_reason(reason, required=True)
    transaction = _load(session, transaction_id)
    _check_open(transaction, actor)
    before = snapshot(transaction)
    now = utcnow()
    transaction.state = TransactionState.CLOSED.value
    transaction.decided_at = now
    transaction.closed_at = now
    transaction.resolved_by = actor.username
    transaction.details = {**(transaction.details or {}), "resolution": "refused"}
    session.flush()
    _record(session, config, actor, "refuse", transaction, before, why)
    return Outcome(transaction.id, "refuse", "refused, the barrier stays closed")


def send_to_inspection(
    session: Session, config: SiteConfig, actor: Actor, transaction_id: int, reason: str | None
) -> Outcome:
    """Keep the barrier closed and direct the truck to secondary inspection."""
    _check_actor(actor)
    why = _check_reason(reason, required=False)
    transaction = _load(session, transaction_id)
    if transaction.state != TransactionState.TROUBLE.value:
        raise ActionRefused(
            f"transaction {transaction.id} is {transaction.state}; only trouble can be sent "
            "to inspection"
        )
    before = snapshot(transaction)
    transaction.state = TransactionState.INSPECTION.value
    transaction.decision = Decision.INSPECTION.value
    transaction.decided_at = utcnow()
    transaction.resolved_by = actor.username
    session.flush()
    _record(session, config, actor, "send_to_inspection", transaction, before, why)
    return Outcome(transaction.id, "send_to_inspection", "sent to secondary inspection")


def reprint(
    session: Session, config: SiteConfig, actor: Actor, transaction_id: int
) -> Outcome:
    """Print the gate pass and instruction ticket again (only for a passed transaction)."""
    _check_actor(actor)
    transaction = _load(session, transaction_id)
    if transaction.gate_pass_number is None:
        raise ActionRefused(f"transaction {transaction.id} has no gate pass to print")
    before = snapshot(transaction)
    _record(session, config, actor, "print_tickets", transaction, before, None)
    return Outcome(
        transaction.id,
        "print_tickets",
        f"gate pass {transaction.gate_pass_number} sent to the lane printer",
    )


# --- database transaction, then lane effects ---------------------------------------------------


class Resolver:
    """Applies clerk actions: database first (one commit), then the lane's effects."""

    def __init__(
        self,
        config: SiteConfig,
        session_factory: sessionmaker[Session] | Callable[[], Session],
        effects: LaneEffects,
        effect_timeout_s: float = 15.0,
    ) -> None:
        self._config = config
        self._session_factory = session_factory
        self._effects = effects
        self._effect_timeout_s = effect_timeout_s

    def _apply(self, step: Callable[[Session], Outcome]) -> tuple[Outcome, str]:
        with self._session_factory() as session, session.begin():
            outcome = step(session)
            lane = session.get_one(GateTransaction, outcome.transaction_id).lane
        return outcome, lane

    async def correct_container(
        self, actor: Actor, transaction_id: int, position: int, number: str, reason: str | None
    ) -> Outcome:
        try:
            outcome, _lane = self._apply(
                lambda s: correct_container(
                    s, self._config, actor, transaction_id, position, number, reason
                )
            )
        except ActionRefused as exc:
            with self._session_factory() as session, session.begin():
                record_rejected_correction(session, actor, transaction_id, number, str(exc))
            raise
        return outcome

    async def rerun_ocr(self, actor: Actor, transaction_id: int) -> Outcome:
        outcome, _lane = self._apply(lambda s: rerun_ocr(s, self._config, actor, transaction_id))
        return await self._effects_done(outcome, [lambda: self._effects.rerun_ocr(transaction_id)])

    async def approve(self, actor: Actor, transaction_id: int, reason: str) -> Outcome:
        self._check_release(transaction_id)
        outcome, lane = self._apply(
            lambda s: approve(s, self._config, actor, transaction_id, reason)
        )
        return await self._effects_done(
            outcome,
            [
                lambda: self._effects.open_barrier(lane, transaction_id),
                lambda: self._effects.print_tickets(lane, transaction_id),
            ],
        )

    async def refuse(self, actor: Actor, transaction_id: int, reason: str) -> Outcome:
        outcome, _lane = self._apply(
            lambda s: refuse(s, self._config, actor, transaction_id, reason)
        )
        return outcome

    async def send_to_inspection(
        self, actor: Actor, transaction_id: int, reason: str | None
    ) -> Outcome:
        outcome, lane = self._apply(
            lambda s: send_to_inspection(s, self._config, actor, transaction_id, reason)
        )
        return await self._effects_done(
            outcome, [lambda: self._effects.direct_to_inspection(lane, transaction_id)]
        )

    async def reprint(self, actor: Actor, transaction_id: int) -> Outcome:
        outcome, lane = self._apply(lambda s: reprint(s, self._config, actor, transaction_id))
        return await self._effects_done(
            outcome, [lambda: self._effects.print_tickets(lane, transaction_id)]
        )

    def _check_release(self, transaction_id: int) -> None:
        """Ask the lane first, when it can tell (an optional `check_release(lane, id)` of the
        effects), whether it would let this truck through: a release it would refuse (no clean
        scan, no valid credential) is refused before anything is recorded or sent to the TOS."""
        check = getattr(self._effects, "check_release", None)
        if check is None:
            return
        with self._session_factory() as session:
            transaction = session.get(GateTransaction, transaction_id)
            if transaction is None:
                raise ActionRefused(f"transaction {transaction_id} does not exist")
            lane = transaction.lane
        try:
            check(lane, transaction_id)
        except Exception as exc:  # the lane's refusal, in its words, goes to the clerk
            _LOGGER.warning(
                "lane %s: release of transaction %s refused by the lane: %s",
                lane,
                transaction_id,
                exc,
            )
            raise ActionRefused(f"lane {lane} will not let this truck through: {exc}") from None

    async def _effects_done(
        self, outcome: Outcome, effects: list[Callable[[], Awaitable[None]]]
    ) -> Outcome:
        """Run the lane effects in order, stopping at the first failure (no ticket for a barrier
        that did not open). A failure is logged and reported to the clerk, not raised: the
        decision is on record and the lane keeps its barrier closed on its own."""
        for effect in effects:
            try:
                async with asyncio.timeout(self._effect_timeout_s):
                    await effect()
            except TimeoutError:
                _LOGGER.warning(
                    "transaction %s: lane did not confirm %s within %s s",
                    outcome.transaction_id,
                    outcome.action,
                    self._effect_timeout_s,
                )
                return Outcome(
                    outcome.transaction_id,
                    outcome.action,
                    outcome.message,
                    outcome.move_event_ids,
                    (f"no answer from the lane within {self._effect_timeout_s:g} s",),
                )
            except Exception as exc:  # a lane device error must reach the clerk, not crash
                _LOGGER.warning(
                    "transaction %s: lane effect of %s failed: %s",
                    outcome.transaction_id,
                    outcome.action,
                    exc,
                )
                return Outcome(
                    outcome.transaction_id,
                    outcome.action,
                    outcome.message,
                    outcome.move_event_ids,
                    (f"{type(exc).__name__}: {exc}",),
                )
        return outcome
