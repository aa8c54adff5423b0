"""The `gated` command: the daemon and its tools, one subcommand per module."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Each subcommand lives in gated/commands/<module>.py with `register(subparsers)`, which adds
# its parser and sets `func` (a callable taking the parsed arguments, returning an exit code).
COMMAND_MODULES = (
    "run",
    "check_config",
    "db",
    "drivers",
    "rpm",
    "credential",
    "ocr",
    "kiosk",
    "codeco",
)


def build_parser(
    prog: str = "gated",
    description: str = "Gate automation daemon for container terminals.",
    package: str = "gated.commands",
    modules: Sequence[str] = COMMAND_MODULES,
) -> argparse.ArgumentParser:
    """A command with one subcommand per module of `package` (shared with `hwsim`)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--log-level", default="INFO", type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="default INFO",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in modules:
        module = importlib.import_module(f"{package}.{name}")
        module.register(subparsers)
    return parser


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse, set up logging, run the chosen subcommand; its return value is the exit code."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    code = args.func(args)
    return int(code or 0)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
