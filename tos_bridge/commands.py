"""What the TOS may send the gate, validated before anything touches the database.

Each topic under `<prefix>/<site>/tos/` carries one kind of command as a JSON object. A
command that is not JSON, too large, on an unknown topic or not of its topic's schema is a
`CommandRejected`; it is answered on `tos/errors` and changes nothing.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1
_CONTAINER_FORMAT = re.compile(r"[A-Z]{4}[0-9]{7}")


class CommandRejected(Exception):
    """A TOS command the gate refuses; `code` is stable for machines, `detail` for people."""

    def __init__(self, code: str, detail: str, command_id: str | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.command_id = command_id


def _container_number(value: str) -> str:
    # Format only: the TOS is the authority on its equipment, and real interchanges carry
    # numbers whose check digit does not compute (the SMDG CODECO example does).
    number = value.strip().upper().replace(" ", "")
    if not _CONTAINER_FORMAT.fullmatch(number):
        raise ValueError(f"{value!r} is not a container number (4 letters, 7 digits)")
    return number


ContainerNumber = Annotated[str, AfterValidator(_container_number)]
Epc = Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{4,128}$", description="Tag EPC in hex.")]
Code = Annotated[str, Field(min_length=1, max_length=32)]


class Command(BaseModel):
    """Fields every command carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(description="Command schema version; 1.")
    command_id: str | None = Field(
        default=None, max_length=64, description="TOS reference, repeated in any error reply."
    )

    @field_validator("schema_version", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        # JSON `true` equals 1 to Python, and Literal[1] cannot be made strict
        if isinstance(value, bool):
            raise ValueError("schema_version must be the number 1, not a boolean")
        return value


class AppointmentCommand(Command):
    """Topic `tos/appointments`: create, change or cancel a pre-advice / appointment."""

    action: Literal["upsert", "cancel"] = Field(description="upsert creates or replaces.")
    reference: str = Field(min_length=1, max_length=64, description="TOS appointment reference.")
    direction: Literal["in", "out"] | None = Field(
        default=None, description="in: container delivered to the terminal; out: picked up."
    )
    container_number: ContainerNumber | None = Field(
        default=None, description="Container expected (null for a bobtail pick-up order)."
    )
    company_code: Code | None = Field(default=None, description="Trucking company expected.")
    truck_epc: Epc | None = Field(default=None, description="Truck tag, when the TOS knows it.")
    window_start: AwareDatetime | None = Field(default=None, description="Window opens.")
    window_end: AwareDatetime | None = Field(default=None, description="Window closes.")
    yard_position: str | None = Field(
        default=None, max_length=64, description="Where the container goes or is picked up."
    )

    @model_validator(mode="after")
    def _complete(self) -> AppointmentCommand:
        if self.action == "upsert" and self.direction is None:
            raise ValueError("an upsert needs direction")
        if self.window_start and self.window_end and self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        return self


class HoldCommand(Command):
    """Topic `tos/holds`: place or release a hold on a container."""

    action: Literal["place", "release"] = Field(description="Place a hold or release it.")
    container_number: ContainerNumber = Field(description="Container the hold is on.")
    kind: Literal["customs", "line", "terminal"] = Field(description="Who holds it.")
    reason: str | None = Field(default=None, max_length=500, description="Shown to the clerk.")


class YardPositionCommand(Command):
    """Topic `tos/yard_positions`: the yard position to print on a truck's instruction ticket."""

    container_number: ContainerNumber = Field(description="Container the position is for.")
    yard_position: str = Field(min_length=1, max_length=64, description="Block-bay-row-tier.")
    reference: str | None = Field(
        default=None, max_length=64, description="Appointment to update; default all open ones."
    )


class TruckCommand(Command):
    """Topic `tos/trucks`: add, change or remove a truck in the registry."""

    action: Literal["upsert", "delete"] = Field(description="upsert creates or replaces.")
    epc: Epc = Field(description="The truck tag's EPC.")
    plate: str | None = Field(default=None, max_length=32, description="Licence plate.")
    company_code: Code | None = Field(default=None, description="Trucking company code.")
    company_name: str | None = Field(
        default=None, max_length=128, description="Company name, for a company new to the gate."
    )


class AckCommand(Command):
    """Topic `tos/acks`: the TOS has taken one or more moves, named by event id."""

    event_id: str | None = Field(default=None, min_length=1, max_length=36)
    event_ids: list[Annotated[str, Field(min_length=1, max_length=36)]] = Field(
        default=[], max_length=1000, description="Several moves acknowledged at once."
    )

    @model_validator(mode="after")
    def _some(self) -> AckCommand:
        if self.event_id is None and not self.event_ids:
            raise ValueError("an ack needs event_id or event_ids")
        return self

    def all_ids(self) -> list[str]:
        ids = list(self.event_ids)
        if self.event_id is not None:
            ids.insert(0, self.event_id)
        return ids


COMMAND_TOPICS: dict[str, type[Command]] = {
    "appointments": AppointmentCommand,
    "holds": HoldCommand,
    "yard_positions": YardPositionCommand,
    "trucks": TruckCommand,
    "acks": AckCommand,
}
ERRORS_TOPIC = "errors"


def _short(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(part) for part in item["loc"]) or "<root>"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def parse_command(kind: str, payload: bytes, max_bytes: int) -> Command:
    """Validate one command of topic `tos/<kind>`; raise CommandRejected when it is refused."""
    if len(payload) > max_bytes:
        raise CommandRejected("oversized", f"{len(payload)} bytes, the limit is {max_bytes}")
    model = COMMAND_TOPICS.get(kind)
    try:
        document: Any = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CommandRejected("malformed", f"not a JSON document: {exc}") from exc
    except RecursionError as exc:
        raise CommandRejected("malformed", "JSON nested too deeply") from exc
    command_id = None
    if isinstance(document, dict) and isinstance(document.get("command_id"), str):
        command_id = document["command_id"][:64]
    if model is None:
        raise CommandRejected("unknown_topic", f"no command kind {kind!r}", command_id)
    if not isinstance(document, dict):
        raise CommandRejected("invalid", "the command must be a JSON object", command_id)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise CommandRejected("invalid", _short(exc), command_id) from exc


def command_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of each inbound command, by file name under docs/schemas/."""
    return {
        f"tos_{kind}.json": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"tos_{kind}.json",
            **model.model_json_schema(),
        }
        for kind, model in COMMAND_TOPICS.items()
    }



def write_schemas(directory: str) -> list[str]:
    """Write the inbound command schemas (run after changing a command model)."""
    import pathlib

    written = []
    for name, schema in command_schemas().items():
        path = pathlib.Path(directory) / name
        path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        written.append(str(path))
    return written
