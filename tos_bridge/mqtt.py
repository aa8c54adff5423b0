"""The paho client the bridge talks through: protocol, session, TLS, login and last will.

The gate keeps a persistent session (a fixed client id, no clean start) so that TOS commands
sent while it is disconnected wait at the broker, and it acknowledges them itself
(`manual_ack`) only after they are in the database.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from paho.mqtt.client import Client, MQTTv5, MQTTv311
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gated.config import SiteConfig

_LOGGER = logging.getLogger(__name__)

ONLINE = "online"
OFFLINE = "offline"


class Topics:
    """Full topic names of one site: `<prefix>/<site>/...`."""

    def __init__(self, config: SiteConfig) -> None:
        self.base = f"{config.mqtt.topic_prefix}/{config.site_id}"
        self.availability = f"{self.base}/availability"
        self.tos_prefix = f"{self.base}/tos/"
        self.tos_filter = f"{self.base}/tos/#"
        self.errors = f"{self.base}/tos/errors"

    def full(self, relative: str) -> str:
        return f"{self.base}/{relative}"

    def command_kind(self, topic: str) -> str | None:
        """`acks` for `<base>/tos/acks`; None for a topic outside `tos/`."""
        if not topic.startswith(self.tos_prefix):
            return None
        return topic[len(self.tos_prefix) :]


def is_v5(config: SiteConfig) -> bool:
    return config.mqtt.protocol == "5"


def build_client(config: SiteConfig, topics: Topics) -> Client:
    """A configured, not yet connected client with the `offline` last will."""
    mqtt = config.mqtt
    client_id = mqtt.client_id or f"gated-{config.site_id}"
    if is_v5(config):
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTv5,
            manual_ack=True,
        )
    else:
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTv311,
            clean_session=False,
            manual_ack=True,
        )
    if mqtt.username is not None:
        password = None
        if mqtt.password_file is not None:
            password = Path(mqtt.password_file).read_text(encoding="utf-8").strip()
        client.username_pw_set(mqtt.username, password)
    if mqtt.tls is not None:
        client.tls_set(
            ca_certs=mqtt.tls.ca_file, certfile=mqtt.tls.cert_file, keyfile=mqtt.tls.key_file
        )
    client.will_set(topics.availability, OFFLINE, qos=1, retain=True)
    client.max_inflight_messages_set(mqtt.max_inflight)
    client.reconnect_delay_set(min_delay=1, max_delay=mqtt.reconnect_max_s)
    return client


def connect_properties(config: SiteConfig) -> Properties | None:
    if not is_v5(config):
        return None
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = config.mqtt.session_expiry_s
    return properties


# paho's Properties() builds its name tables on every call, which costs more than the
# publish itself; a shallow copy of an empty one shares them (they are never written)
_PUBLISH_PROPERTIES = Properties(PacketTypes.PUBLISH)


def event_properties(config: SiteConfig, event_id: str) -> Properties | None:
    """MQTT 5 user property `event_id`, so subscribers can drop duplicates without parsing."""
    if not is_v5(config):
        return None
    properties = copy.copy(_PUBLISH_PROPERTIES)
    properties.UserProperty = ("event_id", event_id)
    return properties
