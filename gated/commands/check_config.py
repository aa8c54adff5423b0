"""`gated check-config FILE`: validate a site configuration and point at every bad line."""

from __future__ import annotations

import argparse

from gated.config import ConfigError, load_config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check-config", help="validate a site configuration file; prints ok or every error"
    )
    parser.add_argument("file", help="YAML configuration file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        load_config(args.file)
    except ConfigError as exc:
        print(f"{exc.source}: invalid, {len(exc.issues)} error(s)")
        for issue in exc.issues:
            print(f"  {issue}")
        return 1
    print("ok")
    return 0
