"""A simulated pedestal TWIC reader on a pty, with scripted cards.

Speaks the frame format of `drivers.card_reader`. Card kinds: valid, expired, canceled,
biometric_fail, corrupted (a byte damaged on the line), slow (the frame trickles in),
counterfeit (a copied FASC-N that fails the reader's card authentication).
The scripted FASC-Ns are made-up numbers; `scripted_fascn(kind)` gives the one a kind uses so
a world model can register the driver or put the card on the canceled card list.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from datetime import date, timedelta
from pathlib import Path

from drivers.card_reader import encode_frame
from drivers.fascn import Fascn, decode, from_digits
from hwsim.pty_device import PtyDevice

_LOGGER = logging.getLogger(__name__)

CARD_KINDS = (
    "valid", "expired", "canceled", "biometric_fail", "corrupted", "slow", "counterfeit"
)

# credential number, series, issue and the person number's last three digits per card
_SCRIPTED = {
    "valid": ("310042", "0", "1", "111"),
    "expired": ("310077", "0", "2", "222"),
    "canceled": ("310099", "1", "1", "333"),
}


def scripted_fascn(kind: str, company: str | None = None) -> Fascn:
    """The FASC-N a scripted card kind carries for a driver of `company` (made-up numbers).

    Kinds other than expired and canceled carry the valid card's number. A world model
    registers these with `gated.credentials.register_driver` and puts the canceled ones on its
    canceled card list.
    """
    credential, series, issue, person_tail = _SCRIPTED.get(kind, _SCRIPTED["valid"])
    company_digits = 0
    if company is not None:
        company_digits = int(hashlib.sha256(company.encode()).hexdigest(), 16) % 10_000
    person = f"555{company_digits:04d}{person_tail}"
    return from_digits(f"00700001{credential}{series}{issue}{person}120011")


class SimulatedCardReader:
    """A card reader reachable at `link_path`; `present` holds a card to it."""

    def __init__(self, link_path: str | Path, *, chunk_delay_s: float = 0.05) -> None:
        self.device = PtyDevice(link_path, "simulated card reader")
        self.chunk_delay_s = chunk_delay_s
        self.presented = 0

    @property
    def link_path(self) -> Path:
        return self.device.link_path

    def close(self) -> None:
        self.device.close()

    def __enter__(self) -> SimulatedCardReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def frame_for(
        card: str | Fascn,
        company: str | None = None,
        *,
        biometric: bool | None = None,
        score: int | None = None,
        expires_on: date | None = None,
        ascii_form: bool = False,
        today: date | None = None,
    ) -> bytes:
        """The bytes the reader sends for one presentation (before any damage on the line)."""
        today = today or date.today()
        kind = card if isinstance(card, str) and card in CARD_KINDS else None
        if isinstance(card, Fascn):
            fascn = card
        elif kind is not None:
            fascn = scripted_fascn(kind, company)
        else:
            fascn = decode(card)
        if expires_on is None:
            expires_on = today - timedelta(days=30) if kind == "expired" else today.replace(
                year=today.year + 3
            )
        if biometric is None:
            biometric = kind != "biometric_fail"
        if score is None:
            score = 212 if biometric else 31
        card_data = fascn.to_ascii() if ascii_form else fascn.to_hex()
        result = "M" if biometric else "N"
        authentic = "N" if kind == "counterfeit" else "Y"
        return encode_frame(
            f"F={card_data};X={expires_on:%Y%m%d};A={authentic};B={result};S={score}"
        )

    async def present(
        self,
        card: str | Fascn,
        company: str | None = None,
        *,
        biometric: bool | None = None,
        score: int | None = None,
        expires_on: date | None = None,
        ascii_form: bool = False,
    ) -> None:
        """Hold a card (a kind from CARD_KINDS, a Fascn, or FASC-N text) to the reader; a kind
        carries the scripted FASC-N of a driver of `company`."""
        frame = self.frame_for(
            card,
            company,
            biometric=biometric,
            score=score,
            expires_on=expires_on,
            ascii_form=ascii_form,
        )
        self.presented += 1
        if card == "corrupted":
            damaged = bytearray(frame)
            damaged[len(frame) // 2] ^= 0x04  # one bit hit by noise on the line
            self.device.write(bytes(damaged))
        elif card == "slow":
            for start in range(0, len(frame), 8):
                self.device.write(frame[start : start + 8])
                await asyncio.sleep(self.chunk_delay_s)
        else:
            self.device.write(frame)
        await asyncio.sleep(0)

    async def send_garbage(self, *, seed: int | None = None) -> None:
        """Line noise: random bytes, a frame cut short, a frame with a damaged byte."""
        rng = random.Random(seed)
        noise = bytes(rng.randrange(256) for _ in range(24)).replace(b"\x02", b"")
        frame = self.frame_for("valid")
        damaged = bytearray(frame)
        damaged[len(frame) // 3] ^= 0x01
        self.device.write(noise + frame[: len(frame) // 2] + bytes(damaged))
        await asyncio.sleep(0)

    def send_raw(self, data: bytes) -> None:
        """Put arbitrary bytes on the line: noise, half frames, joined frames."""
        self.device.write(data)
