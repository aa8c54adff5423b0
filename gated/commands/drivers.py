"""`gated drivers enroll FILE --config CFG`: register drivers to trucking companies.

The file is CSV with a header `fascn,company,name,card_expires_on` (FASC-N as 50 hex digits or
its ASCII form; date as YYYY-MM-DD or empty). Only the keyed hash of each FASC-N and the last
four digits of the credential number are stored. Re-enrolling a driver moves or updates it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import date


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    drivers = subparsers.add_parser("drivers", help="drivers registered to trucking companies")
    actions = drivers.add_subparsers(dest="drivers_action", metavar="ACTION", required=True)
    enroll = actions.add_parser("enroll", help="register drivers from a CSV file")
    enroll.add_argument("file", help="CSV: fascn,company,name,card_expires_on")
    enroll.add_argument("--config", required=True, help="site configuration file")
    enroll.set_defaults(func=run_enroll)


def run_enroll(args: argparse.Namespace) -> int:
    from drivers.fascn import FascnError, decode
    from gated.commands.site import load_or_report, site_database
    from gated.credentials import load_fascn_key, register_driver

    config = load_or_report(args.config)
    if config is None:
        return 1
    key = load_fascn_key(config.security.fascn_key_file)
    enrolled, bad = 0, 0
    try:
        with open(args.file, encoding="utf-8", newline="") as handle, \
                site_database(config) as sessions, sessions.begin() as session:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    fascn = decode(row["fascn"].strip())
                    company = row["company"].strip()
                    if not company:
                        raise ValueError("company is empty")
                    expires = row.get("card_expires_on", "").strip()
                    register_driver(
                        session, fascn, key=key, company_code=company,
                        name=(row.get("name") or "").strip() or None,
                        card_expires_on=date.fromisoformat(expires) if expires else None,
                    )
                    enrolled += 1
                except (FascnError, ValueError, KeyError) as exc:
                    # messages never repeat the FASC-N: the line number points at it
                    print(f"line {line}: skipped: {exc}", file=sys.stderr)
                    bad += 1
    except OSError as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    print(f"enrolled {enrolled} driver(s), {bad} bad row(s)")
    return 0 if enrolled or not bad else 1
