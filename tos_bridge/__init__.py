"""tos_bridge package."""
