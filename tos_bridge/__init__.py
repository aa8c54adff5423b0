"""The link to the terminal operating system: outbox events out over MQTT, TOS commands in."""

from tos_bridge.bridge import BridgeCounters, TosBridge

__all__ = ["BridgeCounters", "TosBridge"]
