"""Decoding recorded reader bytes exactly as a live connection would (same framing and sllurp).

Used to check captures of real readers and of the simulator, and by the ingest benchmark to
measure sllurp's bare decoding rate of the same bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sllurp.llrp import LLRPMessage, LLRPReaderConfig

from rfid.client import SupervisedClient


@dataclass
class DecodedCapture:
    messages: Counter[str] = field(default_factory=Counter)
    tags: list[dict[str, Any]] = field(default_factory=list)
    unknown_messages: int = 0
    failure: str | None = None


def decode_capture(data: bytes, chunk_sizes: Iterable[int] | None = None) -> DecodedCapture:
    """Feed `data` through the client's framing in chunks (default: all at once)."""
    result = DecodedCapture()

    def on_message(message: LLRPMessage) -> None:
        name = message.getName()
        result.messages[name] += 1
        if name == "RO_ACCESS_REPORT":
            result.tags.extend(message.msgdict[name]["TagReportData"])

    client = SupervisedClient(
        "capture", 0, LLRPReaderConfig(), label="capture", on_ended=lambda: None,
        on_message=on_message, offline=True,
    )
    offset = 0
    sizes = iter(chunk_sizes) if chunk_sizes is not None else iter([len(data)])
    while offset < len(data) and client.failure is None:
        size = max(1, next(sizes, len(data)))
        client.raw_data_received(data[offset : offset + size])
        offset += size
    result.unknown_messages = client.unknown_messages
    result.failure = client.failure
    return result
