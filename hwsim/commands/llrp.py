"""`hwsim llrp`: one simulated LLRP reader that keeps reporting the tags it is given."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import BinaryIO

from hwsim.llrp import Faults, SimulatedReader
from hwsim.llrp.protocol import ReaderModel
from hwsim.llrp.tagfield import parse_epc

_LOGGER = logging.getLogger(__name__)
FAULT_NAMES = Faults.names()


def _tag(text: str) -> tuple[str, int]:
    epc, _, antenna = text.partition("@")
    try:
        parse_epc(epc)
        number = int(antenna) if antenna else 1
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from exc
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError(f"{text!r}: antenna must be 1..64")
    return epc, number


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "llrp",
        help="run a simulated LLRP reader",
        description="A simulated LLRP reader on loopback that keeps reporting the given tags.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5084, help="TCP port (0: any free port)")
    parser.add_argument(
        "--tag", type=_tag, action="append", default=[], metavar="EPC[@ANTENNA]",
        help="a tag in front of an antenna (default antenna 1); repeat for more tags",
    )
    parser.add_argument("--rate", type=float, default=10.0, help="reads per second per tag")
    parser.add_argument("--rssi", type=float, default=-55.0, help="peak RSSI of the reads, dBm")
    parser.add_argument("--antennas", type=int, default=4, help="antenna ports of the reader")
    parser.add_argument("--tick", type=float, default=0.01, help="inventory period, seconds")
    parser.add_argument(
        "--fault", action="append", default=[], choices=FAULT_NAMES,
        help="switch a fault on from the start; repeatable",
    )
    parser.add_argument("--capture", help="append every byte sent to clients to this file")
    parser.add_argument(
        "--burst", action="store_true",
        help="benchmarks: report every tag as fast as the client reads (ignores --rate)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    capture: BinaryIO | None = open(args.capture, "ab") if args.capture else None  # noqa: SIM115
    try:
        asyncio.run(_serve(args, capture))
    finally:
        if capture is not None:
            capture.close()
    return 0


async def _serve(args: argparse.Namespace, capture: BinaryIO | None) -> None:
    reader = SimulatedReader(
        args.host, args.port, model=ReaderModel(antennas=args.antennas), tick_s=args.tick,
        capture=capture, burst=args.burst,
    )
    for epc, antenna in args.tag:
        reader.field.show(epc, antenna, None, rate=args.rate, rssi=args.rssi)
    for fault in args.fault:
        reader.faults.set(fault)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await reader.start()
    print(f"listening on {reader.host}:{reader.port}", flush=True)
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await reader.stop()
        _LOGGER.info("%s: stopped after %d reports", reader.name, reader.reports_sent)
