"""`gated run --config FILE`: the daemon. Refuses to start on an invalid configuration."""

from __future__ import annotations

import argparse
import asyncio
import logging

from gated.config import ConfigError, load_config

_LOGGER = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("run", help="run the gate daemon")
    parser.add_argument("--config", required=True, help="site configuration file (YAML)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        # a safety system fails closed: no defaults, no partial start
        print(f"refusing to start: {exc}")
        return 2
    from gated.daemon import Daemon

    daemon = Daemon(config)
    asyncio.run(daemon.run())
    _LOGGER.info("stopped")
    return 0
