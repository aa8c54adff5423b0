"""The pedestal TWIC card reader on a serial line.

Wire format (one frame per presentation, ASCII between STX and ETX, then the block check as two
hex digits: XOR of every byte between STX and ETX):

    STX F=<FASC-N>;X=<expiry YYYYMMDD>;A=<Y|N>;B=<M|N|->;S=<score 0-255> ETX <BCC>

F is the 200-bit FASC-N in hex or its ASCII form; X the card's expiry from its CHUID; A whether
the reader authenticated the card (CHUID signature or card authentication key); B the biometric
match result (M match, N no match, - not performed) with the reader's score. Fields other than
F may be absent; an absent A or B counts as "not verified".
Bytes outside a frame are line noise and ignored (counted). A frame that fails its block check,
is cut short, stalls longer than the verification time, or holds an undecodable FASC-N becomes
an "unreadable" presentation, and the reader carries on with the next frame.

Known shortcoming: this frame format is the product's own; a reader that speaks only OSDP or
Wiegand needs an adapter in front of it. An OSDP driver here would remove the adapter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from drivers.fascn import Fascn, FascnError, decode
from drivers.serial_line import HealthCallback, SerialLine
from gated.config import CardReaderConfig
from gated.domain import utcnow

_LOGGER = logging.getLogger(__name__)

STX = 0x02
ETX = 0x03
MAX_FRAME = 256

BIOMETRIC_MATCH = "match"
BIOMETRIC_NO_MATCH = "no_match"
BIOMETRIC_NOT_PERFORMED = "not_performed"
_BIOMETRIC_CODES = {"M": BIOMETRIC_MATCH, "N": BIOMETRIC_NO_MATCH, "-": BIOMETRIC_NOT_PERFORMED}


@dataclass(frozen=True)
class CardPresented:
    """A card held to the reader. The FASC-N stays in memory; its repr is masked."""

    lane: str
    at: datetime
    fascn: Fascn | None
    expires_on: date | None = None
    biometric_status: str | None = None
    biometric_score: int | None = None
    unreadable: str | None = None  # why the card could not be read; None when it was
    authenticated: bool | None = None  # the reader's card authentication; None: not done

    @property
    def readable(self) -> bool:
        return self.unreadable is None and self.fascn is not None


def block_check(payload: bytes) -> str:
    """The frame's block check character as two upper-case hex digits."""
    bcc = 0
    for byte in payload:
        bcc ^= byte
    return f"{bcc:02X}"


def encode_frame(payload: str) -> bytes:
    body = payload.encode("ascii")
    return bytes([STX]) + body + bytes([ETX]) + block_check(body).encode("ascii")


@dataclass
class FrameParser:
    """Splits the byte stream into frames; returns (payload, None) or (None, why_unreadable)."""

    noise_bytes: int = 0
    _buffer: bytearray = field(default_factory=bytearray)
    _in_frame: bool = False
    _check: bytearray | None = None

    @property
    def in_frame(self) -> bool:
        return self._in_frame

    def feed(self, data: bytes) -> list[tuple[bytes | None, str | None]]:
        results: list[tuple[bytes | None, str | None]] = []
        for byte in data:
            if self._check is not None and byte == STX:
                # the check characters never came (they are printable): a new frame begins
                results.append((None, "block check missing"))
                self.reset()
            if self._check is not None:
                self._check.append(byte)
                if len(self._check) == 2:
                    results.append(self._finish())
                continue
            if byte == STX:
                if self._in_frame:
                    results.append((None, "frame cut short by the next one"))
                self._in_frame = True
                self._buffer.clear()
            elif not self._in_frame:
                self.noise_bytes += 1
            elif byte == ETX:
                self._check = bytearray()
            else:
                self._buffer.append(byte)
                if len(self._buffer) > MAX_FRAME:
                    results.append((None, "frame too long"))
                    self.reset()
        return results

    def reset(self) -> None:
        self._in_frame = False
        self._buffer.clear()
        self._check = None

    def _finish(self) -> tuple[bytes | None, str | None]:
        payload = bytes(self._buffer)
        received = bytes(self._check or b"")
        self.reset()
        if received.upper() != block_check(payload).encode("ascii"):
            return None, "frame failed its block check"
        return payload, None


def parse_payload(
    lane: str, payload: bytes, at: datetime, *, implicit_biometric: bool = False
) -> CardPresented:
    """Turn one checked frame into a presentation; anything wrong makes it unreadable.

    With `implicit_biometric` the reader only sends card data after a fingerprint match, so a
    frame without B= is a match.
    """
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError:
        return CardPresented(lane, at, None, unreadable="frame holds non-ASCII bytes")
    fields: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip().upper()] = value.strip()
    if not fields.get("F"):
        return CardPresented(lane, at, None, unreadable="frame holds no card data")
    try:
        fascn = decode(fields["F"])
    except FascnError as exc:
        return CardPresented(lane, at, None, unreadable=f"card data: {exc}")

    expires_on = None
    if fields.get("X"):
        try:
            expires_on = datetime.strptime(fields["X"], "%Y%m%d").date()
        except ValueError:
            return CardPresented(lane, at, None, unreadable="expiry date is not YYYYMMDD")
    status = _BIOMETRIC_CODES.get(fields.get("B", "M" if implicit_biometric else "-"))
    if status is None:
        return CardPresented(lane, at, None, unreadable="unknown biometric result code")
    authenticated = {"Y": True, "N": False, "": None}.get(fields.get("A", ""), False)
    score = None
    if fields.get("S"):
        if not fields["S"].isdigit() or int(fields["S"]) > 255:
            return CardPresented(lane, at, None, unreadable="biometric score is not 0-255")
        score = int(fields["S"])
    return CardPresented(lane, at, fascn, expires_on, status, score, None, authenticated)


class CardReader:
    """Reads presentations from the lane's card reader and hands each to `on_card`."""

    def __init__(
        self,
        lane: str,
        config: CardReaderConfig,
        on_card: Callable[[CardPresented], None],
        on_health: HealthCallback,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.lane = lane
        self.config = config
        self._on_card = on_card
        self._clock = clock
        self._parser = FrameParser()
        self._line = SerialLine(lane, "card reader", config, on_health)
        self._stall: asyncio.TimerHandle | None = None
        self.presented = 0
        self.unreadable = 0

    @property
    def noise_bytes(self) -> int:
        return self._parser.noise_bytes

    async def run(self) -> None:
        try:
            await self._line.run(self._feed)
        finally:
            self._cancel_stall()
            self._parser.reset()

    def _feed(self, data: bytes) -> None:
        at = self._clock()
        results = self._parser.feed(data)
        for payload, problem in results:
            if payload is None:
                self._emit(CardPresented(self.lane, at, None, unreadable=problem))
            else:
                implicit = self.config.biometric_result == "implicit"
                self._emit(parse_payload(self.lane, payload, at, implicit_biometric=implicit))
        # the verification clock runs from the frame's start, however slowly its bytes come
        if results or not self._parser.in_frame:
            self._cancel_stall()
        if self._parser.in_frame and self._stall is None:
            loop = asyncio.get_running_loop()
            self._stall = loop.call_later(self.config.verify_timeout_s, self._stalled)

    def _stalled(self) -> None:
        self._stall = None
        self._parser.reset()
        self._emit(
            CardPresented(
                self.lane,
                self._clock(),
                None,
                unreadable=f"frame not finished within {self.config.verify_timeout_s:g} s",
            )
        )

    def _cancel_stall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _emit(self, card: CardPresented) -> None:
        self.presented += 1
        if card.unreadable is not None:
            self.unreadable += 1
            _LOGGER.warning("lane %s: card reader: unreadable card: %s", self.lane, card.unreadable)
        else:
            _LOGGER.info(
                "lane %s: card reader: card %s presented, biometric %s",
                self.lane, card.fascn, card.biometric_status,
            )
        try:
            self._on_card(card)
        except Exception:
            _LOGGER.exception("lane %s: card reader: card handler failed", self.lane)
