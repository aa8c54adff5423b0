"""A sllurp 3.0.5 client for exactly one connection, with the failure modes it has closed off.

sllurp frames the byte stream itself and fails silently in several ways (see DOMAIN.md
section 3): a decoding error kills its thread without telling anyone, an unknown message type
throws away the rest of a buffer and desynchronises the stream, a half message left behind
breaks a reconnect, and a refused connection hangs. This subclass

- takes a socket the supervisor connected (no blocking connect, no sllurp reconnect),
- frames messages itself: an unknown type is skipped by its length and counted, a message that
  does not decode ends the connection with a reason instead of killing the thread silently,
- records the time of the last message for the supervisor's watchdog,
- treats a refusing ConnectionAttemptEvent as the end of the connection, and
- tells the supervisor when its thread ends, whatever the cause.

A client object serves one connection; the supervisor builds a fresh one for every attempt
(sllurp stalls when a client is reused after `hard_disconnect()`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from sllurp.llrp import LLRPMessage, LLRPReaderClient, LLRPReaderConfig
from sllurp.llrp_errors import ReaderConfigurationError
from sllurp.llrp_proto import get_message_name_from_type

_LOGGER = logging.getLogger(__name__)

# sllurp logs half a dozen INFO lines per connection attempt, which floods the log while a reader
# is away and we retry; unless the site configured sllurp's logger, keep it to warnings.
_SLLURP_LOGGER = logging.getLogger("sllurp")
if _SLLURP_LOGGER.level == logging.NOTSET:
    _SLLURP_LOGGER.setLevel(logging.WARNING)

HEADER = struct.Struct("!HII")
MAX_MESSAGE = 1 << 20  # no reader message comes near this; a larger length means garbage
CUSTOM_MESSAGE = 1023
RO_ACCESS_REPORT = 61

# Every key named here must exist in sllurp's LLRPReaderConfig: it silently ignores misspellings.
TAG_CONTENT = {
    "EnableROSpecID": False,
    "EnableSpecIndex": False,
    "EnableInventoryParameterSpecID": False,
    "EnableAntennaID": True,
    "EnableChannelIndex": False,
    "EnablePeakRSSI": True,
    "EnableFirstSeenTimestamp": True,
    "EnableLastSeenTimestamp": False,
    "EnableTagSeenCount": True,
    "EnableAccessSpecID": False,
}


def sllurp_config(
    antennas: list[int],
    tx_power_dbm: float | None,
    keepalive_s: float,
    report_every_n_tags: int,
    report_timeout_ms: int,
) -> LLRPReaderConfig:
    """sllurp's reader configuration, every key checked to exist and every type as it wants."""
    settings: dict[str, Any] = {
        "antennas": list(antennas),
        "tx_power": 0,  # index 0 means the reader's highest power
        "tx_power_dbm": float(tx_power_dbm) if tx_power_dbm is not None else None,
        "report_every_n_tags": int(report_every_n_tags),
        "report_timeout_ms": int(report_timeout_ms),
        "keepalive_interval": max(1, int(keepalive_s * 1000)),
        "tag_content_selector": dict(TAG_CONTENT),
        "reconnect": False,  # the supervisor reconnects; sllurp's own waits a fixed 60 s
        "reconnect_retries": 0,
        "start_inventory": True,
        "reset_on_connect": True,
    }
    defaults = LLRPReaderConfig()
    unknown = sorted(key for key in settings if not hasattr(defaults, key))
    if unknown:
        raise ValueError(f"sllurp does not know these settings: {', '.join(unknown)}")
    selector_keys = set(defaults.tag_content_selector)
    if set(TAG_CONTENT) != selector_keys:
        raise ValueError(f"tag content selector keys differ from sllurp's: {selector_keys}")
    return LLRPReaderConfig(settings)


class SupervisedClient(LLRPReaderClient):  # type: ignore[misc]
    """sllurp's client for one connection on a socket the caller connected."""

    def __init__(
        self,
        host: str,
        port: int,
        config: LLRPReaderConfig,
        label: str,
        on_ended: Callable[[], object],
        on_message: Callable[[LLRPMessage], object] | None = None,
        offline: bool = False,
    ) -> None:
        super().__init__(host, port, config)
        self._on_message = on_message
        self._offline = offline  # decode only: no state machine, nothing is sent
        self.label = label
        self.last_message_at = time.monotonic()
        self.messages = 0
        self.unknown_messages = 0
        self.failure: str | None = None
        self.refused = False
        self._buffer = bytearray()
        self._attached: socket.socket | None = None
        self._on_ended = on_ended
        self._unknown_logged: set[int] = set()

    # --- connection -------------------------------------------------------------------------

    def attach(self, sock: socket.socket) -> None:
        """Use this connected socket; `connect()` then only starts sllurp's thread."""
        self._attached = sock

    def _connect_socket(self) -> bool:
        if self._attached is None:
            raise ReaderConfigurationError("no connected socket attached")
        self._socket = self._attached
        return True

    def main_loop(self) -> None:
        try:
            super().main_loop()
        finally:
            self._on_ended()

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread and close the socket; safe to call more than once, from any thread."""
        self.disconnect_requested.set()
        self._stop_main_loop.set()
        thread = self._socket_thread
        if thread is not None and thread is not threading.current_thread():
            # shut down but do not close yet: closing under sllurp's select() makes it fail
            if self._attached is not None:
                with contextlib.suppress(OSError):
                    self._attached.shutdown(socket.SHUT_RDWR)
            thread.join(timeout)
        self.hard_disconnect()
        if self._attached is not None:
            self._attached.close()

    @property
    def thread(self) -> threading.Thread | None:
        return self._socket_thread  # type: ignore[no-any-return]

    def _end(self, reason: str) -> None:
        """End this connection from sllurp's thread; the supervisor reads `failure`."""
        if self.failure is None:
            self.failure = reason
        self.hard_disconnect()

    # --- framing ----------------------------------------------------------------------------

    def raw_data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        offset = 0
        try:
            while len(buffer) - offset >= HEADER.size:
                word, length, _message_id = HEADER.unpack_from(buffer, offset)
                version, msg_type = (word >> 10) & 0x7, word & 0x3FF
                if version not in (1, 2) or not HEADER.size <= length <= MAX_MESSAGE:
                    self._end(f"stream out of step (version {version}, length {length})")
                    return
                if len(buffer) - offset < length:
                    return
                frame = bytes(buffer[offset : offset + length])
                offset += length
                self.last_message_at = time.monotonic()
                self.messages += 1
                if not self._dispatch(msg_type, frame):
                    return
        finally:
            del buffer[:offset]

    def _dispatch(self, msg_type: int, frame: bytes) -> bool:
        """Decode and hand on one message; False when the connection must end."""
        if msg_type != CUSTOM_MESSAGE:
            try:
                get_message_name_from_type(msg_type)
            except KeyError:
                self._skip_unknown(msg_type)
                return True
        try:
            message = LLRPMessage(msgbytes=frame)
        except Exception as exc:  # sllurp raises struct.error, IndexError, LLRPError...
            self._end(f"undecodable message type {msg_type}: {type(exc).__name__}: {exc}")
            return False
        if self._on_message is not None:
            self._on_message(message)
        if msg_type == RO_ACCESS_REPORT:
            # sllurp's state machine does nothing with a report but hand it to the callbacks
            tags = message.msgdict["RO_ACCESS_REPORT"].get("TagReportData") or []
            for callback in self._tag_report_callbacks:
                callback(self, tags)
            return True
        try:
            refused = self._is_refusal(message)
        except (AttributeError, KeyError, TypeError) as exc:  # a notification of odd shape
            self._end(f"malformed READER_EVENT_NOTIFICATION: {exc}")
            return False
        if refused:
            return False
        self._on_llrp_message_received(message)
        if self._offline:
            return True
        try:
            self.llrp.handleMessage(message)
        except ReaderConfigurationError as exc:
            self._end(f"reader configuration error: {exc}")
            return False
        except Exception as exc:  # sllurp's state machine fails on incomplete capabilities
            self._end(f"{message.getName()} broke the handshake: {type(exc).__name__}: {exc}")
            return False
        return True

    def _skip_unknown(self, msg_type: int) -> None:
        self.unknown_messages += 1
        if msg_type not in self._unknown_logged:
            self._unknown_logged.add(msg_type)
            _LOGGER.warning(
                "%s: skipped a message of unknown type %d; counting further ones",
                self.label,
                msg_type,
            )

    def _is_refusal(self, message: LLRPMessage) -> bool:
        if message.getName() != "READER_EVENT_NOTIFICATION":
            return False
        data = message.msgdict["READER_EVENT_NOTIFICATION"].get("ReaderEventNotificationData", {})
        attempt = data.get("ConnectionAttemptEvent") if isinstance(data, dict) else None
        if not attempt or attempt.get("Status") == "Success":
            return False
        self.refused = True
        self._end(f"reader refused the connection: {attempt.get('Status')}")
        return True
