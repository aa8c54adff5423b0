"""`gated db upgrade`: create or migrate the database schema of a site."""

from __future__ import annotations

import argparse

from gated.config import ConfigError, load_config
from gated.db import make_engine, upgrade


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("db", help="database schema: upgrade to the newest migration")
    actions = parser.add_subparsers(dest="db_action", metavar="ACTION", required=True)
    up = actions.add_parser("upgrade", help="apply every migration not yet applied")
    up.add_argument("--config", required=True, help="site configuration file")
    up.set_defaults(func=run_upgrade)


def run_upgrade(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc)
        return 1
    engine = make_engine(config.database.url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    print("ok")
    return 0
