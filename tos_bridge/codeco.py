"""UN/EDIFACT CODECO (D.95B, SMDG user manual) gate-in and gate-out reports, with pydifact.

One interchange per report kind; one message per container move, as the SMDG manual's
examples do: BGM (34 gate-in, 36 gate-out), the equipment (EQD with its ISO size-type), the
time of the movement (DTM 7), the terminal (LOC 165), the truck (TDT inland transport by road)
and the equipment count (CNT 16).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydifact.exceptions import MissingImplementationWarning
from pydifact.segmentcollection import Interchange, Message
from pydifact.segments import Segment
from sqlalchemy import select
from sqlalchemy.orm import Session

from gated.models import GateTransaction, Move, Truck

MESSAGE_ID = ["CODECO", "D", "95B", "UN", "SMDG16"]
DOCUMENT_CODE = {"gate_in": "34", "gate_out": "36"}
SYNTAX = ("UNOA", 1)


@dataclass(frozen=True)
class CodecoMove:
    """What a CODECO message says about one move (a gate move from the `move` table)."""

    kind: str  # gate_in or gate_out
    container_number: str
    size_type: str | None
    occurred_at: datetime
    truck: str | None  # licence plate when known, else the tag EPC
    document_number: str  # gate pass number, or the move's id
    event_id: str


@contextmanager
def _quiet_pydifact() -> Iterator[None]:
    # pydifact 0.2 ships no directory for the service segments (UNB, UNH, UNT, UNZ) and
    # warns on each one it builds or reads; the segments are written by hand here instead
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingImplementationWarning)
        yield


def _edi_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%d%H%M")


def _clean(value: str, limit: int) -> str:
    """EDIFACT level A allows upper-case letters, digits and a few signs; no separators."""
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-()/=")
    return "".join(c for c in value.upper() if c in allowed)[:limit]


def _message(reference: str, move: CodecoMove, sender: str, terminal: str) -> Message:
    message = Message(reference, MESSAGE_ID)
    equipment: list[str | list[str]] = ["CN", move.container_number]
    if move.size_type:
        equipment.append([move.size_type, "102", "5"])
    segments = [
        Segment("BGM", DOCUMENT_CODE[move.kind], _clean(move.document_number, 35), "9"),
        Segment("NAD", "MS", _clean(sender, 35)),
        Segment("EQD", *equipment),
        Segment("RFF", ["ABT", _clean(move.document_number, 35)]),
        Segment("DTM", ["7", _edi_time(move.occurred_at), "203"]),
        Segment("LOC", "165", [_clean(terminal, 25), "TER", "ZZZ"]),
    ]
    truck = _clean(move.truck or "", 35)
    if truck:
        segments.append(Segment("TDT", "1", "", "3", "", "", "", "", [truck, "146"]))
    segments.append(Segment("CNT", ["16", "1"]))
    message.add_segments(segments)
    return message


def build_interchange(
    moves: Sequence[CodecoMove],
    *,
    sender: str,
    recipient: str,
    control_reference: str,
    terminal: str,
    prepared_at: datetime,
) -> Interchange:
    """One interchange holding a CODECO message per move (all of one kind)."""
    with _quiet_pydifact():
        interchange = Interchange(
            sender=_clean(sender, 35),
            recipient=_clean(recipient, 35),
            control_reference=control_reference[:14],
            syntax_identifier=SYNTAX,
            timestamp=prepared_at.astimezone(UTC),
        )
        for number, move in enumerate(moves, start=1):
            reference = f"{control_reference[:9]}{number:05d}"
            interchange.add_message(_message(reference, move, sender, terminal))
    return interchange


def serialize(interchange: Interchange) -> str:
    """The interchange as EDIFACT text, one segment per line (as the SMDG examples print)."""
    with _quiet_pydifact():
        return interchange.serialize(break_lines=True)


def parse(text: str) -> Interchange:
    with _quiet_pydifact():
        return Interchange.from_str(text)


def moves_in(interchange: Interchange) -> list[dict[str, str]]:
    """Read the moves back out of a CODECO interchange (ours or a TOS's)."""
    result = []
    with _quiet_pydifact():
        messages = list(interchange.get_messages())
    for message in messages:
        found: dict[str, str] = {"message": str(message.reference_number)}
        for segment in message.segments:
            elements: list[object] = list(segment.elements)
            if segment.tag == "BGM":
                found["document_code"] = str(elements[0])
            elif segment.tag == "EQD" and elements[0] == "CN":
                found["container_number"] = str(elements[1])
                if len(elements) > 2 and isinstance(elements[2], list):
                    found["size_type"] = str(elements[2][0])
            elif segment.tag == "DTM" and isinstance(elements[0], list):
                if elements[0][0] in ("7", "ACT"):
                    found.setdefault("time", str(elements[0][1]))
            elif segment.tag == "TDT" and elements[0] == "1":
                last = elements[-1]
                if isinstance(last, list) and last:
                    found["truck"] = str(last[0])
        result.append(found)
    return result


def control_reference(prepared_at: datetime, kind: str) -> str:
    """A control reference unique per report: time to the second and the report kind."""
    return f"{prepared_at.astimezone(UTC):%y%m%d%H%M%S}{DOCUMENT_CODE[kind]}"


def split_by_kind(moves: Iterable[CodecoMove]) -> dict[str, list[CodecoMove]]:
    kinds: dict[str, list[CodecoMove]] = {"gate_in": [], "gate_out": []}
    for move in moves:
        if move.kind in kinds:
            kinds[move.kind].append(move)
    return kinds


# --- from the database to files ------------------------------------------------------------


def load_moves(session: Session, since: datetime, until: datetime) -> list[CodecoMove]:
    """Gate moves with since <= occurred_at < until, oldest first."""
    query = (
        select(Move, GateTransaction.gate_pass_number, Truck.plate)
        .join(GateTransaction, GateTransaction.id == Move.transaction_id, isouter=True)
        .join(Truck, Truck.epc == Move.truck, isouter=True)
        .where(Move.kind.in_(tuple(DOCUMENT_CODE)))
        .where(Move.occurred_at >= since)
        .where(Move.occurred_at < until)
        .order_by(Move.occurred_at, Move.id)
    )
    moves = []
    for move, gate_pass, plate in session.execute(query).all():
        document = gate_pass or (move.details or {}).get("gate_pass_number") or str(move.id)
        moves.append(
            CodecoMove(
                kind=move.kind,
                container_number=move.container_number,
                size_type=move.size_type,
                occurred_at=move.occurred_at,
                truck=plate or move.truck,
                document_number=str(document),
                event_id=move.event_id,
            )
        )
    return moves


def write_reports(
    moves: Sequence[CodecoMove],
    out: Path,
    *,
    site: str,
    sender: str,
    recipient: str,
    terminal: str,
    prepared_at: datetime,
) -> list[tuple[Path, int]]:
    """One file per report kind that has moves; returns (path, number of moves)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, of_kind in split_by_kind(moves).items():
        if not of_kind:
            continue
        interchange = build_interchange(
            of_kind,
            sender=sender,
            recipient=recipient,
            control_reference=control_reference(prepared_at, kind),
            terminal=terminal,
            prepared_at=prepared_at,
        )
        path = out / f"CODECO-{site}-{kind}-{prepared_at.astimezone(UTC):%Y%m%d%H%M%S}.edi"
        path.write_text(serialize(interchange), encoding="ascii", errors="replace")
        written.append((path, len(of_kind)))
    return written
