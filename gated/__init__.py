"""gated package."""
