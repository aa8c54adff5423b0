"""Subcommands of `hwsim`, one module each."""
