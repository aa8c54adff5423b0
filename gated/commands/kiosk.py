"""`gated kiosk hash-password` and `gated kiosk add-user`: kiosk accounts for the config file.

Passwords are read from the terminal (twice) or from standard input, never from the command
line, where other users of the machine could see them in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import sys

import yaml

from gated.config import KioskUser
from gated.kiosk.auth import password_hasher

MIN_PASSWORD_CHARS = 10


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("kiosk", help="clerk kiosk accounts: hash passwords, add users")
    actions = parser.add_subparsers(dest="kiosk_action", metavar="ACTION", required=True)

    hash_password = actions.add_parser(
        "hash-password", help="print the argon2 hash of a password for kiosk.users[].password_hash"
    )
    hash_password.add_argument(
        "--stdin", action="store_true", help="read the password from standard input (scripts)"
    )
    hash_password.set_defaults(func=run_hash_password)

    add_user = actions.add_parser(
        "add-user", help="print a kiosk.users entry (YAML) to paste into the site configuration"
    )
    add_user.add_argument("username", help="login name")
    add_user.add_argument(
        "--role", required=True, choices=["clerk", "supervisor", "viewer"], help="what it may do"
    )
    add_user.add_argument(
        "--stdin", action="store_true", help="read the password from standard input (scripts)"
    )
    add_user.set_defaults(func=run_add_user)


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("the two passwords differ", file=sys.stderr)
            return None
    if len(password) < MIN_PASSWORD_CHARS:
        print(f"a kiosk password needs at least {MIN_PASSWORD_CHARS} characters", file=sys.stderr)
        return None
    return password


def run_hash_password(args: argparse.Namespace) -> int:
    password = _read_password(args.stdin)
    if password is None:
        return 1
    print(password_hasher().hash(password))
    return 0


def run_add_user(args: argparse.Namespace) -> int:
    password = _read_password(args.stdin)
    if password is None:
        return 1
    try:
        user = KioskUser(
            username=args.username, role=args.role, password_hash=password_hasher().hash(password)
        )
    except ValueError as exc:
        print(f"invalid user: {exc}", file=sys.stderr)
        return 1
    print("# add under kiosk.users in the site configuration:")
    print(yaml.safe_dump([user.model_dump()], sort_keys=False).rstrip())
    return 0
