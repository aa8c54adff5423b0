"""`gated credential decode FASCN` and `gated ccl import FILE --config CFG`.

`credential decode` is for an engineer at a pedestal: it is the one place a full FASC-N is
shown, to the person who typed it. It logs nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

from drivers.fascn import FascnError, decode
from gated.commands.site import load_or_report, site_database
from gated.config import ConfigError, load_config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    credential = subparsers.add_parser("credential", help="TWIC credential tools")
    actions = credential.add_subparsers(dest="credential_action", metavar="ACTION", required=True)
    decoder = actions.add_parser(
        "decode", help="decode a FASC-N (200-bit hex or ASCII form) and print its fields as JSON"
    )
    decoder.add_argument("fascn", help="50 hex digits, or AAAA,SSSS,CCCCCC,S,I,PPPPPPPPPPOOOOOA")
    decoder.set_defaults(func=run_decode)
    register_parser = actions.add_parser(
        "register", help="register a driver's card with a trucking company (stores a keyed hash)"
    )
    register_parser.add_argument("fascn", help="the card's FASC-N, or - to read it from stdin")
    register_parser.add_argument("--company", required=True, help="trucking company code")
    register_parser.add_argument("--name", help="driver's name as the kiosk shows it")
    register_parser.add_argument("--expires", help="card expiry, YYYY-MM-DD")
    register_parser.add_argument("--config", required=True, help="site configuration file")
    register_parser.set_defaults(func=run_register)

    ccl = subparsers.add_parser("ccl", help="TSA canceled card list")
    ccl_actions = ccl.add_subparsers(dest="ccl_action", metavar="ACTION", required=True)
    importer = ccl_actions.add_parser(
        "import", help="import a canceled card list (FASC-N + date per line), idempotently"
    )
    importer.add_argument("file", help="the list as downloaded from TSA")
    importer.add_argument("--config", required=True, help="site configuration file")
    importer.set_defaults(func=run_ccl_import)
    status = ccl_actions.add_parser(
        "status", help="age of the canceled card list against the MARSEC level; exit 1 if stale"
    )
    status.add_argument("--config", required=True, help="site configuration file")
    status.set_defaults(func=run_ccl_status)


def run_decode(args: argparse.Namespace) -> int:
    try:
        fascn = decode(args.fascn)
    except FascnError as exc:
        print(json.dumps({"error": exc.kind, "position": exc.position, "message": str(exc)}))
        print(f"not a valid FASC-N: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({**fascn.fields(), "hex": fascn.to_hex(), "ascii": fascn.to_ascii()}))
    return 0


def run_register(args: argparse.Namespace) -> int:
    from gated.credentials import load_fascn_key, register_driver

    text = sys.stdin.readline() if args.fascn == "-" else args.fascn
    try:
        fascn = decode(text)
        expires = date.fromisoformat(args.expires) if args.expires else None
        config = load_config(args.config)
    except (FascnError, ValueError, ConfigError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    key = load_fascn_key(config.security.fascn_key_file)
    with site_database(config) as sessions, sessions.begin() as session:
        register_driver(
            session, fascn, key=key, company_code=args.company, name=args.name,
            card_expires_on=expires,
        )
    print(f"driver with card {fascn.masked()} registered with {args.company}")
    return 0


def run_ccl_import(args: argparse.Namespace) -> int:
    from gated.credentials import CclImportError, import_canceled_card_list, load_fascn_key

    config = load_or_report(args.config)
    if config is None:
        return 1
    key = load_fascn_key(config.security.fascn_key_file)
    try:
        with site_database(config) as sessions, sessions() as session:
            report = import_canceled_card_list(session, args.file, key=key)
    except CclImportError as exc:
        print(f"{args.file}: refused: {exc}", file=sys.stderr)
        return 1
    for problem in report.problems[:50]:
        print(f"  {problem}")
    if len(report.problems) > 50:
        print(f"  ... and {len(report.problems) - 50} more bad rows")
    print(
        f"{args.file}: {report.rows} rows imported ({report.added} new), "
        f"{report.bad_rows} bad rows"
    )
    return 0


def run_ccl_status(args: argparse.Namespace) -> int:
    from gated.credentials import ccl_status
    from gated.domain import utcnow

    config = load_or_report(args.config)
    if config is None:
        return 1
    with site_database(config) as sessions, sessions() as session:
        status = ccl_status(session, config.security, utcnow())
    imported = status.imported_at.isoformat() if status.imported_at else None
    print(json.dumps({
        "stale": status.stale,
        "imported_at": imported,
        "max_age_hours": status.max_age.total_seconds() / 3600,
        "marsec_level": config.security.marsec_level,
        "text": status.text,
    }))
    return 1 if status.stale else 0
