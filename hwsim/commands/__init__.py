"""Subcommands of `hwsim`, one module each."""

import argparse


def listen_port(text: str) -> int:
    """A TCP port to listen on, 1-65535. Port 0 is refused: the Modbus server would take a
    port of the kernel's choosing without saying which, and nobody could connect to it."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is not in 1-65535")
    return port
