"""`python -m tos_bridge --config FILE`: run the TOS bridge alone (the daemon embeds it).

Useful on a machine that only relays the outbox, and for crash tests. SIGTERM and SIGINT
stop it cleanly (availability `offline`); SIGKILL leaves the broker to publish the last will.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from gated.config import ConfigError, load_config
from gated.db import make_engine, session_factory
from tos_bridge.bridge import TosBridge

_LOGGER = logging.getLogger(__name__)


async def _serve(bridge: TosBridge) -> None:
    task = asyncio.create_task(bridge.run(), name="tos-bridge")
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tos_bridge", description=__doc__)
    parser.add_argument("--config", required=True, help="site configuration file")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    engine = make_engine(config.database.url)
    try:
        asyncio.run(_serve(TosBridge(config, session_factory(engine))))
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
