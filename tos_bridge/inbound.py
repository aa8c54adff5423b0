"""TOS commands in: each is validated, applied in its own transaction, then acknowledged.

The gate sends the PUBACK of a command itself (paho `manual_ack`) once the command is in the
database or refused, so a crash in between leaves the broker to deliver it again. Acks of
moves are applied in batches; replies and PUBACKs keep the order the commands came in.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gated import outbox
from gated.config import SiteConfig
from tos_bridge import mqtt
from tos_bridge.commands import ERRORS_TOPIC, AckCommand, CommandRejected, parse_command
from tos_bridge.publisher import Publisher, Sent
from tos_bridge.store import apply_acks, apply_command

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inbound:
    """One message heard on `tos/#`, with the connection it came on."""

    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes


@dataclass
class CommandCounts:
    applied: int = 0
    refused: int = 0
    moves_acked: int = 0  # moves newly acknowledged
    ack_ids: int = 0  # event ids in acks, repeats included (the TOS's pace)


class CommandHandler:
    def __init__(
        self,
        config: SiteConfig,
        sessions: sessionmaker[Session],
        publisher: Publisher,
        acknowledge: Callable[[Inbound], None],
        clock: Callable[[], datetime],
    ) -> None:
        self._config = config
        self._sessions = sessions
        self._publisher = publisher
        self._acknowledge = acknowledge
        self._clock = clock
        self._topics = mqtt.Topics(config)
        self.counts = CommandCounts()

    def handle(self, items: Iterable[Inbound]) -> None:
        acks: list[tuple[Inbound, AckCommand]] = []
        for item in items:
            try:
                acks = self._one(item, acks)
            except SQLAlchemyError:
                raise  # the worker waits for the database and tries again
            except Exception as exc:
                # one command must never stop the bridge, or it would come back at every
                # restart (it is never acknowledged); answer it and keep the trace
                self._unexpected(item, exc)
        self._apply_acks(acks)

    def _one(
        self, item: Inbound, acks: list[tuple[Inbound, AckCommand]]
    ) -> list[tuple[Inbound, AckCommand]]:
        """Handle one message; returns the acks still to be applied as a batch."""
        kind = self._topics.command_kind(item.topic)
        command: Any = None
        rejected: CommandRejected | None = None
        if kind is not None and kind != ERRORS_TOPIC:
            try:
                command = parse_command(kind, item.payload, self._config.mqtt.max_command_bytes)
            except CommandRejected as exc:
                rejected = exc
        if isinstance(command, AckCommand):
            return [*acks, (item, command)]
        self._apply_acks(acks)
        if kind is None or kind == ERRORS_TOPIC:  # our replies (3.1.1 has no no-local)
            self._acknowledge(item)
        elif rejected is not None:
            self._reject(item, kind, rejected)
        else:
            self._apply_one(item, kind, command)
        return []

    def _unexpected(self, item: Inbound, exc: Exception) -> None:
        # the trace as text: a kept exception would keep this handler (and paho) alive
        _LOGGER.error(
            "site %s: TOS command on %s failed unexpectedly: %s\n%s",
            self._config.site_id,
            item.topic[:255],
            exc.__class__.__name__,
            traceback.format_exc(),
        )
        failure = CommandRejected("not_applied", exc.__class__.__name__)
        self._reject(item, item.topic.rsplit("/", 1)[-1], failure)

    def _apply_one(self, item: Inbound, kind: str, command: Any) -> None:
        try:
            with self._sessions.begin() as session:
                apply_command(session, command, self._clock())
        except CommandRejected as exc:
            self._reject(item, kind, exc)
            return
        except SQLAlchemyError as exc:
            _LOGGER.warning(
                "site %s: TOS command on tos/%s not applied: %s",
                self._config.site_id,
                kind,
                str(exc),
            )
            failure = CommandRejected("not_applied", exc.__class__.__name__, command.command_id)
            self._reject(item, kind, failure)
            return
        self.counts.applied += 1
        self._acknowledge(item)

    def _apply_acks(self, acks: list[tuple[Inbound, AckCommand]]) -> None:
        if not acks:
            return
        ids = list(dict.fromkeys(i for _, command in acks for i in command.all_ids()))
        try:
            with self._sessions.begin() as session:
                newly, unknown = apply_acks(session, ids, self._clock())
        except Exception as exc:
            # the moves stay unacknowledged and are sent again; the TOS acks them again
            if not isinstance(exc, SQLAlchemyError):
                _LOGGER.error(
                    "site %s: TOS acks failed unexpectedly: %s\n%s",
                    self._config.site_id,
                    exc.__class__.__name__,
                    traceback.format_exc(),
                )
            for item, command in acks:
                failure = CommandRejected(
                    "not_applied", exc.__class__.__name__, command.command_id
                )
                self._reject(item, "acks", failure)
            return
        self.counts.moves_acked += newly
        self.counts.ack_ids += len(ids)
        missing = set(unknown)
        for item, command in acks:
            strange = [i for i in command.all_ids() if i in missing]
            if strange:
                detail = f"no move with event id {', '.join(strange[:5])}"
                failure = CommandRejected("unknown_event", detail, command.command_id)
                self._reject(item, "acks", failure)
            else:
                self.counts.applied += 1
                self._acknowledge(item)

    def _reject(self, item: Inbound, kind: str, exc: CommandRejected) -> None:
        """Answer on tos/errors, count, acknowledge: the command changed nothing."""
        self.counts.refused += 1
        # strings only in the log record: a kept exception would keep this handler alive
        _LOGGER.warning(
            "site %s: TOS command on tos/%s refused: %s: %s",
            self._config.site_id,
            kind[:64],
            exc.code,
            exc.detail,
        )
        body = {
            "type": "command_error",
            "topic": item.topic[:255],
            "command_id": exc.command_id,
            "error": exc.code,
            "detail": exc.detail[:1000],
        }
        # through the outbox, like every other event: the answer survives a broker outage and
        # a restart between the acknowledgement of the command and its publication
        try:
            with self._sessions.begin() as session:
                outbox.add_event(
                    session, site=self._config.site_id, topic=f"tos/{ERRORS_TOPIC}", lane=None,
                    body=body,
                )
        except SQLAlchemyError as exc:
            # the database itself is what failed: answer straight away rather than not at all
            _LOGGER.warning(
                "site %s: command error not queued (%s); sent directly",
                self._config.site_id,
                exc.__class__.__name__,
            )
            payload = outbox.envelope(site=self._config.site_id, lane=None, body=body)
            sent = Sent("direct", 0, str(payload["event_id"]), f"tos/{ERRORS_TOPIC}")
            self._publisher.publish(sent, json.dumps(payload, separators=(",", ":")))
        self._acknowledge(item)
