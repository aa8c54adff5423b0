"""`gated codeco --since TIME [--until TIME] --out DIR --config FILE`: CODECO gate reports.

Writes a UN/EDIFACT CODECO (D.95B, SMDG) gate-in report and a gate-out report for the gate
moves in the window. Times are ISO 8601; a time without a zone is taken as UTC.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from gated.config import ConfigError, load_config
from gated.db import make_engine, session_factory
from gated.domain import utcnow
from tos_bridge.codeco import load_moves, write_reports


def _time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "codeco", help="write UN/EDIFACT CODECO gate-in / gate-out reports for a time window"
    )
    parser.add_argument("--config", required=True, help="site configuration file")
    parser.add_argument("--since", required=True, type=_time, help="window start (ISO 8601)")
    parser.add_argument("--until", type=_time, default=None, help="window end; default now")
    parser.add_argument("--out", required=True, type=Path, help="directory for the .edi files")
    parser.add_argument("--sender", default=None, help="UNB sender id; default the site id")
    parser.add_argument("--recipient", default="TOS", help="UNB recipient id (default TOS)")
    parser.add_argument(
        "--terminal", default=None, help="terminal code in LOC+165; default the site id"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc)
        return 1
    until = args.until or utcnow()
    if until <= args.since:
        print(f"--until {until.isoformat()} is not after --since {args.since.isoformat()}")
        return 2
    engine = make_engine(config.database.url)
    try:
        with session_factory(engine)() as session:
            moves = load_moves(session, args.since, until)
    finally:
        engine.dispose()
    if not moves:
        print(f"no gate moves from {args.since.isoformat()} to {until.isoformat()}")
        return 0
    written = write_reports(
        moves,
        args.out,
        site=config.site_id,
        sender=args.sender or config.site_id,
        recipient=args.recipient,
        terminal=args.terminal or config.site_id,
        prepared_at=utcnow(),
    )
    for path, count in written:
        print(f"{path}: {count} moves")
    return 0
