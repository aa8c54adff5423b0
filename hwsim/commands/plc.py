"""`hwsim plc`: a simulated gate PLC on loopback (loops, photo-eye, barrier, light)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from hwsim.commands import listen_port
from hwsim.plc import SimulatedPlc

_LOGGER = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plc",
        help="run a simulated gate PLC",
        description="A gate PLC on Modbus TCP with the default PlcRegisterMap: a barrier that "
        "obeys the open/close coils and takes --travel seconds to move.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=listen_port, default=5021, help="TCP port")
    parser.add_argument("--travel", type=float, default=3.0, help="barrier travel time, s")
    parser.add_argument("--scan", type=float, default=0.05, help="PLC scan period, s")
    parser.add_argument("--safety-reverse", action="store_true",
                        help="the barrier reverses by itself for a blocked photo-eye")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


async def _serve(args: argparse.Namespace) -> None:
    plc = SimulatedPlc(args.host, args.port, scan_s=args.scan, barrier_travel_s=args.travel,
                       safety_reverse=args.safety_reverse)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await plc.start()
    _LOGGER.info("hwsim plc on %s:%d", args.host, args.port)
    try:
        await stop.wait()
    finally:
        await plc.stop()
