"""Tag reports per second through the whole RFID path, and sllurp's bare decode rate.

    .venv/bin/python bench/rfid_ingest.py [--tags 200] [--rate 150] [--seconds 5] [--batch 1]

1. A simulated reader runs in its own process (`hwsim llrp`) and records what it sends.
2. End to end: simulator -> TCP -> sllurp (thread) -> framing -> hand-off to asyncio ->
   normalise + dedupe -> a lane's read handler, counted over a fixed window after warm-up.
3. Bare decode: sllurp's `LLRPMessage` decoding of the very RO_ACCESS_REPORT bytes the
   simulator sent in this run, in a tight loop.
4. Reconnect: an in-process simulated reader drops the connection; time until inventory again.

Targets (issue 4): >= 10,000 reports/s end to end, >= half the bare decode rate, reconnect < 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from sllurp.llrp import LLRPMessage

from gated.config import LlrpReaderConfig
from gated.domain import DeviceHealth, TagRead
from hwsim.llrp import SimulatedReader
from rfid import ReaderSupervisor

HEADER = struct.Struct("!HII")


class Lane:
    """The consumer at the end of the path: keeps the last read per EPC, as a lane would."""

    def __init__(self) -> None:
        self.last: dict[str, TagRead] = {}
        self.reads = 0
        self.health: list[DeviceHealth] = []

    def on_read(self, read: TagRead) -> None:
        self.reads += 1
        self.last[read.epc] = read

    def on_health(self, health: DeviceHealth) -> None:
        self.health.append(health)


def start_simulator(
    tags: int, rate: float, capture: Path, burst: bool
) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, "-m", "hwsim.cli", "--log-level", "WARNING", "llrp", "--port", "0",
               "--rate", str(rate), "--tick", "0.005", "--capture", str(capture)]
    if burst:
        command.append("--burst")
    for index in range(tags):
        command += ["--tag", f"3034257BF7194E4{index:09X}@{index % 4 + 1}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("listening on "):
        process.kill()
        raise RuntimeError(f"simulator did not start: {line!r}")
    return process, int(line.rsplit(":", 1)[1])


async def until(predicate, within_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


async def end_to_end(port: int, seconds: float, batch: int) -> dict[str, float]:
    lane = Lane()
    config = LlrpReaderConfig(
        host="127.0.0.1", port=port, antennas=[1, 2, 3, 4], dedupe_window_s=2.0,
        keepalive_s=1.0, watchdog_s=5.0,
    )
    supervisor = ReaderSupervisor(
        "bench", config, lane.on_read, lane.on_health, lane="1", report_every_n_tags=batch,
        report_timeout_ms=50,
    )
    task = asyncio.create_task(supervisor.run(), name="bench-supervisor")
    try:
        await until(lambda: supervisor.stats.reports > 0, 10.0)
        await asyncio.sleep(1.0)  # warm-up
        reports0, reads0, start = supervisor.stats.reports, lane.reads, time.perf_counter()
        await asyncio.sleep(seconds)
        reports1, reads1, end = supervisor.stats.reports, lane.reads, time.perf_counter()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return {
        "reports_per_s": (reports1 - reports0) / (end - start),
        "lane_reads_per_s": (reads1 - reads0) / (end - start),
        "outages": supervisor.outages,
        "bad_reports": supervisor.stats.bad_reports,
    }


def frames(data: bytes) -> list[tuple[int, bytes]]:
    found, offset = [], 0
    while offset + HEADER.size <= len(data):
        word, length, _ = HEADER.unpack_from(data, offset)
        if offset + length > len(data):
            break
        found.append((word & 0x3FF, data[offset : offset + length]))
        offset += length
    return found


def bare_decode(data: bytes, limit: int = 100_000, rounds: int = 3) -> dict[str, float]:
    """sllurp decoding alone; the best of a few rounds, as the machine is shared."""
    reports = [frame for kind, frame in frames(data) if kind == 61][:limit]
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        tags = 0
        for frame in reports:
            message = LLRPMessage(msgbytes=frame)
            tags += len(message.msgdict["RO_ACCESS_REPORT"]["TagReportData"])
        best = max(best, tags / (time.perf_counter() - start))
    return {"messages": len(reports), "tags_per_s": best}


async def reconnect_times(drops: int) -> list[float]:
    lane = Lane()
    times = []
    async with SimulatedReader(tick_s=0.005) as reader:
        reader.field.show("3005FB63AC1F3841EC880467", 1, None, rate=50)
        config = LlrpReaderConfig(host="127.0.0.1", port=reader.port, antennas=[1])
        supervisor = ReaderSupervisor("bench-reconnect", config, lane.on_read, lane.on_health)
        task = asyncio.create_task(supervisor.run(), name="bench-reconnect")
        try:
            await until(lambda: supervisor.up is True, 5.0)
            for drop in range(drops):
                ups = sum(h.up for h in lane.health)
                start = time.perf_counter()
                reader.drop_connection()
                await until(lambda u=ups: sum(h.up for h in lane.health) > u, 10.0)
                times.append(time.perf_counter() - start)
                await asyncio.sleep(0.2 if drop % 2 else 1.0)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tags", type=int, default=200, help="distinct tags in the field")
    parser.add_argument("--rate", type=float, default=150.0, help="reads/s per tag (--paced)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring window")
    parser.add_argument("--batch", type=int, default=1, help="report_every_n_tags")
    parser.add_argument(
        "--paced", action="store_true",
        help="simulator paced at --rate per tag instead of sending as fast as TCP drains",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        capture = Path(workdir) / "capture.bin"
        process, port = start_simulator(args.tags, args.rate, capture, burst=not args.paced)
        try:
            e2e = asyncio.run(end_to_end(port, args.seconds, args.batch))
        finally:
            process.terminate()
            process.wait(10)
        data = capture.read_bytes()
    decoded = bare_decode(data)
    kinds = Counter(kind for kind, _ in frames(data))
    reconnects = asyncio.run(reconnect_times(6))

    ratio = e2e["reports_per_s"] / decoded["tags_per_s"]
    offered = f"{args.tags * args.rate:,.0f} reads/s" if args.paced else "as fast as TCP drains"
    print(f"simulator (own process):   {offered}, {args.tags} tags,"
          f" {args.batch} tag(s) per RO_ACCESS_REPORT")
    print(f"end to end (ingested):     {e2e['reports_per_s']:,.0f} tag reports/s"
          f" -> {e2e['lane_reads_per_s']:,.0f} deduplicated reads/s to the lane"
          f" (outages {e2e['outages']:.0f}, bad {e2e['bad_reports']:.0f})")
    print(f"sllurp bare decode:        {decoded['tags_per_s']:,.0f} tag reports/s"
          f" (best of 3 over {decoded['messages']:,.0f} of the {kinds[61]:,}"
          " RO_ACCESS_REPORTs sent in this run)")
    print(f"end to end / bare decode:  {ratio:.2f}")
    print(f"reconnect after a drop:    median {statistics.median(reconnects):.2f} s,"
          f" max {max(reconnects):.2f} s over {len(reconnects)} drops")
    if args.paced:  # the offered load caps the rate: the question is whether the path keeps up
        kept_up = e2e["reports_per_s"] >= 0.95 * args.tags * args.rate
        ok = kept_up and max(reconnects) < 2.0
        verdict = "met" if ok else "NOT met"
        print(f"paced targets (ingests >= 95 % of what is offered, reconnect < 2 s): {verdict}")
    else:
        ok = e2e["reports_per_s"] >= 10_000 and ratio >= 0.5 and max(reconnects) < 2.0
        verdict = "met" if ok else "NOT met"
        print(f"targets (>= 10,000/s, >= 0.5 of bare decode, reconnect < 2 s): {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
