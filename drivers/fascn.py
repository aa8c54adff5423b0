"""The FASC-N of a TWIC card: decode and encode the 200-bit form and the ASCII form.

A FASC-N names a person. `Fascn` objects print masked (agency, system and the last four digits
of the credential number); the full number comes out only through `to_hex`, `to_ascii` and
`digits`, which callers use for decoding tools and the keyed hash, never for logs.

200-bit layout: 40 characters of 5 bits, each 4 data bits least significant first then an odd
parity bit. SS agency(4) FS system(4) FS credential(6) FS series(1) FS issue(1) FS
person(10) category(1) organisation(4) association(1) ES LRC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import reduce
from operator import xor

START_SENTINEL = 0xB
FIELD_SEPARATOR = 0xD
END_SENTINEL = 0xF
CHARACTERS = 40
HEX_LENGTH = 50  # 200 bits

# (name, width) in the order the digits appear; None marks a field separator
_LAYOUT: tuple[tuple[str | None, int], ...] = (
    ("agency", 4),
    (None, 1),
    ("system", 4),
    (None, 1),
    ("credential", 6),
    (None, 1),
    ("series", 1),
    (None, 1),
    ("issue", 1),
    (None, 1),
    ("person", 10),
    ("category", 1),
    ("organisation", 4),
    ("association", 1),
)
DIGIT_COUNT = 32
_FIELDS = tuple((name, width) for name, width in _LAYOUT if name is not None)
_WIDTHS = tuple(width for _, width in _FIELDS)
_DIGIT_SLICES = tuple(
    (sum(_WIDTHS[:index]), sum(_WIDTHS[: index + 1])) for index in range(len(_WIDTHS))
)

_ASCII_FORM = re.compile(r"^(\d{4}),(\d{4}),(\d{6}),(\d),(\d),(\d{10})(\d)(\d{4})(\d)$")


class FascnError(ValueError):
    """A FASC-N that cannot be decoded; `kind` is a stable code, `position` 1-based or None.

    The message names what is wrong and where, never the FASC-N itself.
    """

    def __init__(self, kind: str, message: str, position: int | None = None) -> None:
        self.kind = kind
        self.position = position
        super().__init__(message)


def _with_parity(value: int) -> int:
    """5-bit code as it appears on the wire: b0 b1 b2 b3 parity (b0 first, most significant)."""
    code = 0
    for bit in range(4):
        code = (code << 1) | ((value >> bit) & 1)
    ones = bin(value & 0xF).count("1")
    return (code << 1) | (0 if ones % 2 else 1)


_ENCODE = tuple(_with_parity(value) for value in range(16))
# wire code -> data value, for codes whose parity is odd; other codes are parity errors
_DECODE = {code: value for value, code in enumerate(_ENCODE)}
_DECODE_TABLE = tuple(_DECODE.get(code, -1) for code in range(32))
_SHIFTS = tuple(5 * (CHARACTERS - 1 - index) for index in range(CHARACTERS))
_AS_TEXT = bytes.maketrans(bytes(range(16)), b"0123456789ABCDEF")


@dataclass(frozen=True, repr=False)
class Fascn:
    """A decoded FASC-N. Kept in memory only; prints masked."""

    agency: str
    system: str
    credential: str
    series: str
    issue: str
    person: str
    category: str
    organisation: str
    association: str

    def __post_init__(self) -> None:
        digits = self.digits()
        if not (digits.isascii() and digits.isdigit()) or self._widths() != _WIDTHS:
            for name, width in _FIELDS:
                value = getattr(self, name)
                if len(value) != width or not value.isascii() or not value.isdigit():
                    raise FascnError("non_digit", f"field {name} must be {width} digit(s)")

    def _widths(self) -> tuple[int, ...]:
        return (
            len(self.agency), len(self.system), len(self.credential), len(self.series),
            len(self.issue), len(self.person), len(self.category), len(self.organisation),
            len(self.association),
        )

    def __repr__(self) -> str:
        return f"Fascn({self.masked()})"

    __str__ = __repr__

    def masked(self) -> str:
        """What may appear in logs: agency, system and the credential number's last four."""
        return f"{self.agency}-{self.system}-**{self.credential_last4}"

    @property
    def credential_last4(self) -> str:
        return self.credential[-4:]

    def digits(self) -> str:
        """The 32 digits in wire order: the canonical form the keyed hash is taken of."""
        return (
            self.agency + self.system + self.credential + self.series + self.issue
            + self.person + self.category + self.organisation + self.association
        )

    def to_ascii(self) -> str:
        return (
            f"{self.agency},{self.system},{self.credential},{self.series},{self.issue},"
            f"{self.person}{self.category}{self.organisation}{self.association}"
        )

    def to_hex(self) -> str:
        """The 200-bit form, upper-case hex."""
        values = [START_SENTINEL]
        for name, _width in _LAYOUT:
            if name is None:
                values.append(FIELD_SEPARATOR)
            else:
                values.extend(int(digit) for digit in getattr(self, name))
        values.append(END_SENTINEL)
        lrc = 0
        for value in values:
            lrc ^= value
        values.append(lrc)
        bits = 0
        for value in values:
            bits = (bits << 5) | _ENCODE[value]
        return f"{bits:050X}"

    def fields(self) -> dict[str, str]:
        return {name: getattr(self, name) for name, _ in _LAYOUT if name is not None}


def _expected_layout() -> list[str]:
    """Per character position: 'SS', 'FS', 'ES', 'LRC' or 'digit'."""
    expected = ["SS"]
    for name, width in _LAYOUT:
        expected.extend(["FS"] if name is None else ["digit"] * width)
    return [*expected, "ES", "LRC"]


_EXPECTED = _expected_layout()
_MARKERS = {"SS": START_SENTINEL, "FS": FIELD_SEPARATOR, "ES": END_SENTINEL}
_MARKER_NAMES = {
    "SS": "start sentinel",
    "FS": "field separator",
    "ES": "end sentinel",
}


def decode_hex(text: str) -> Fascn:
    """Decode the 200-bit form (50 hex digits); raise FascnError naming what is wrong."""
    return from_digits(hex_to_digits(text))


def hex_to_digits(text: str) -> str:
    """The 32 digits of a 200-bit FASC-N, checked like `decode_hex`, without building a Fascn
    (the canceled card list holds a million of them)."""
    text = text.strip()
    if len(text) != HEX_LENGTH:
        raise FascnError("length", f"200-bit form needs {HEX_LENGTH} hex digits, got {len(text)}")
    try:
        bits = int(text, 16)
    except ValueError:
        raise FascnError("hex", "200-bit form holds a character that is not hex") from None

    values = [_DECODE_TABLE[(bits >> shift) & 0x1F] for shift in _SHIFTS]
    if -1 in values:
        index = values.index(-1)
        raise FascnError("parity", f"parity error at character {index + 1}", index + 1)
    if reduce(xor, values) != 0:  # the LRC makes the XOR of all 40 characters zero
        raise FascnError("lrc", "LRC does not match the 39 characters before it", CHARACTERS)

    # fast path for lists of a million cards; the slow path names what is wrong
    text = bytes(values).translate(_AS_TEXT).decode("ascii")
    markers = text[0] + text[5] + text[10] + text[17] + text[19] + text[21] + text[38]
    digits = text[1:5] + text[6:10] + text[11:17] + text[18] + text[20] + text[22:38]
    if markers == "BDDDDDF" and digits.isdigit():
        return digits
    return _from_values(values).digits()


def _from_values(values: list[int]) -> Fascn:
    digits: list[str] = []
    for index, (value, expected) in enumerate(zip(values, _EXPECTED, strict=True)):
        if expected == "LRC":
            continue
        if expected == "digit":
            if value > 9:
                raise FascnError(
                    "non_digit",
                    f"character {index + 1} is 0x{value:X} where a digit belongs",
                    index + 1,
                )
            digits.append(str(value))
        elif value != _MARKERS[expected]:
            kind = "separator" if expected == "FS" else "sentinel"
            raise FascnError(
                kind,
                f"character {index + 1} is 0x{value:X}, expected the "
                f"{_MARKER_NAMES[expected]} 0x{_MARKERS[expected]:X}",
                index + 1,
            )
    return from_digits("".join(digits))


def from_digits(digits: str) -> Fascn:
    """A FASC-N from its 32 digits in wire order."""
    if len(digits) != DIGIT_COUNT or not digits.isascii() or not digits.isdigit():
        raise FascnError("non_digit", f"the digit form needs {DIGIT_COUNT} digits")
    return Fascn(*(digits[start:end] for start, end in _DIGIT_SLICES))


def decode_ascii(text: str) -> Fascn:
    """Decode the ASCII form AAAA,SSSS,CCCCCC,S,I,PPPPPPPPPPOOOOOA."""
    match = _ASCII_FORM.match(text.strip())
    if match is None:
        raise FascnError(
            "format", "ASCII form must read AAAA,SSSS,CCCCCC,S,I,PPPPPPPPPPOOOOOA (digits only)"
        )
    return from_digits("".join(match.groups()))


def decode(text: str) -> Fascn:
    """Decode either form: 50 hex digits, the ASCII form with commas, or the 32 digits."""
    text = text.strip()
    if "," in text:
        return decode_ascii(text)
    if len(text) == DIGIT_COUNT and text.isdigit():
        return from_digits(text)
    return decode_hex(text)
