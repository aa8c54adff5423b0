"""Subcommands of `gated`, one module each."""
