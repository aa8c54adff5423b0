"""The `hwsim` command: simulated gate devices that speak the real protocols on loopback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gated.cli import build_parser as build_command_parser
from gated.cli import run_command

# Each subcommand lives in hwsim/commands/<module>.py with `register(subparsers)`, which adds
# its parser and sets `func` (a callable taking the parsed arguments, returning an exit code).
COMMAND_MODULES: tuple[str, ...] = ("llrp", "run", "rpm", "plc")


def build_parser() -> argparse.ArgumentParser:
    return build_command_parser(
        "hwsim", "Hardware simulator: every gate device on loopback.", "hwsim.commands",
        COMMAND_MODULES,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
