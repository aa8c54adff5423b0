"""`hwsim rpm`: a simulated radiation portal monitor on loopback, live or replaying a file.

    hwsim rpm --port 5020                               # Modbus TCP, idle background
    hwsim rpm --port 5020 --truck-every 20 --cargo nuisance
    hwsim rpm --transport ascii --port 1600 --replay S2-C3-NORM2.csv --speed 10 --loop
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from hwsim.commands import listen_port
from hwsim.rpm import SimulatedRpm
from hwsim.rpm_ascii import SimulatedAsciiRpm

_LOGGER = logging.getLogger(__name__)
CARGOS = ("clean", "nuisance", "source", "neutron_source")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rpm",
        help="run a simulated radiation portal monitor",
        description="A radiation portal monitor on loopback: Modbus TCP (the register map of "
        "RpmRegisterMap's defaults) or the ASCII line protocol on TCP.",
    )
    parser.add_argument("--transport", choices=("modbus", "ascii"), default="modbus")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=listen_port, default=5020, help="TCP port")
    parser.add_argument(
        "--sample-period", type=float, default=0.2,
        help="real seconds per 200 ms monitor sample (smaller runs the monitor faster)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed of the counts")
    parser.add_argument("--truck-every", type=float, default=0.0,
                        help="send a truck through every N seconds (0: none)")
    parser.add_argument("--cargo", choices=CARGOS, default="clean", help="what the trucks carry")
    parser.add_argument("--passage", type=float, default=8.0, help="seconds a truck takes")
    parser.add_argument("--replay", type=Path, help="recorded ASCII-protocol file to play")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed factor")
    parser.add_argument("--max-gap", type=float, default=None,
                        help="shorten quiet stretches of the recording to this many seconds")
    parser.add_argument("--loop", action="store_true", help="replay the file again and again")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.replay is not None and not args.replay.is_file():
        print(f"no such recording: {args.replay}")
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


async def _serve(args: argparse.Namespace) -> None:
    sim: SimulatedRpm | SimulatedAsciiRpm
    if args.transport == "modbus":
        sim = SimulatedRpm(args.host, args.port, sample_period_s=args.sample_period,
                           seed=args.seed)
    else:
        sim = SimulatedAsciiRpm(args.host, args.port, sample_period_s=args.sample_period,
                                seed=args.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await sim.start()
    _LOGGER.info("hwsim rpm (%s) on %s:%d", args.transport, args.host, args.port)
    task = asyncio.create_task(_drive(sim, args), name="hwsim rpm driver")
    try:
        await stop.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sim.stop()


async def _drive(sim: SimulatedRpm | SimulatedAsciiRpm, args: argparse.Namespace) -> None:
    if args.replay is not None:
        while True:
            lines = await sim.replay(args.replay, speed=args.speed, max_gap_s=args.max_gap)
            _LOGGER.info("hwsim rpm: replayed %d lines of %s", lines, args.replay)
            if not args.loop:
                return
    if args.truck_every > 0:
        while True:
            await asyncio.sleep(args.truck_every)
            _LOGGER.info("hwsim rpm: truck with %s cargo", args.cargo)
            sim.begin_occupancy(args.cargo, duration_s=args.passage)
