"""`gated rpm analyze FILE`: replay a recorded RPM stream through the daemon's alarm rule.

Reads a vendor daily file in the ASCII line protocol (with or without trailing timestamps) or
an N42.42 file and prints one record per occupancy: the monitor's alarms, the daemon's own
verdict at `--sigma`, the peak sigma per channel and any fault. Engineers use it to choose `n`
and to explain nuisance alarms.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from drivers import n42
from drivers.rpm_lines import Occupancy, OccupancyTracker

DEFAULT_SIGMA = 6.0  # the site default (SiteConfig.rpm_sigma)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("rpm", help="radiation portal monitor tools")
    commands = parser.add_subparsers(dest="rpm_command", metavar="ACTION", required=True)
    analyze = commands.add_parser(
        "analyze", help="evaluate every occupancy of a recorded RPM file (ASCII lines or N42.42)"
    )
    analyze.add_argument("file", help="recorded stream: vendor daily file or N42.42 XML")
    analyze.add_argument(
        "--sigma",
        type=float,
        default=DEFAULT_SIGMA,
        help=f"alarm threshold n in FG > BG + n*sqrt(BG) (default {DEFAULT_SIGMA})",
    )
    analyze.add_argument("--json", action="store_true", help="one JSON object per occupancy")
    analyze.set_defaults(func=run_analyze)


def _is_xml(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<")


def analyze_lines(path: Path, sigma: float) -> tuple[list[Occupancy], OccupancyTracker]:
    """Every occupancy of an ASCII recording, including one cut short by the end of the file."""
    tracker = OccupancyTracker(sigma)
    found = []
    with path.open("r", encoding="utf-8-sig", errors="replace", newline=None) as handle:
        line_no = 0
        for line_no, text in enumerate(handle, start=1):
            occupancy = tracker.feed_text(text, line_no)
            if occupancy is not None:
                found.append(occupancy)
    last = tracker.cut("stream_ended", line_no=line_no)
    if last is not None:
        found.append(last)
    return found, tracker


def _print_human(occupancy: Occupancy) -> None:
    verdict = "ALARM" if occupancy.alarm else ("clean" if not occupancy.faults else "FAULT")
    monitor = "".join(
        flag for flag, on in (("G", occupancy.monitor_gamma_alarm),
                              ("N", occupancy.monitor_neutron_alarm)) if on
    ) or "-"
    daemon = "".join(
        flag for flag, on in (("G", occupancy.gamma_alarm), ("N", occupancy.neutron_alarm)) if on
    ) or "-"
    start = occupancy.started_at.isoformat(timespec="seconds") if occupancy.started_at else "?"
    gamma = " ".join(f"{v:.1f}" for v in occupancy.peak_gamma_sigma) or "n/a"
    neutron = " ".join(f"{v:.1f}" for v in occupancy.peak_neutron_sigma) or "n/a"
    faults = ",".join(occupancy.faults)
    print(
        f"{occupancy.occupancy_id!s:>6} {start:25} {verdict:5} monitor={monitor:2} "
        f"daemon={daemon:2} gamma_sigma=[{gamma}] neutron_sigma=[{neutron}] {faults}"
    )


def run_analyze(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if args.sigma <= 0:
        print("--sigma must be positive", file=sys.stderr)
        return 2
    try:
        if _is_xml(path):
            found = n42.occupancies(n42.load(path), args.sigma)
            summary = f"{path}: N42.42, {len(found)} occupancies"
        else:
            found, tracker = analyze_lines(path, args.sigma)
            ignored = ", ".join(f"{k}={v}" for k, v in sorted(tracker.ignored.items()))
            summary = (
                f"{path}: {tracker.lines} records, {tracker.bad_lines} bad lines, "
                f"{len(found)} occupancies; ignored record types: {ignored or 'none'}"
            )
            if tracker.last_error:
                summary += f"; last bad line: {tracker.last_error}"
    except (OSError, n42.N42Error) as exc:
        print(f"cannot analyze {path}: {exc}", file=sys.stderr)
        return 2
    try:
        for occupancy in found:
            if args.json:
                print(json.dumps(occupancy.to_json()))
            else:
                _print_human(occupancy)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader (head, less) stopped early: not an error of the analysis; point stdout
        # at /dev/null so the interpreter's final flush does not complain again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    alarms = sum(o.alarm for o in found)
    print(f"{summary}; {alarms} alarmed at n={args.sigma:g}", file=sys.stderr)
    return 0
