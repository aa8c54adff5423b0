"""ISO 6346 container numbers and size/type codes: validation, check digit, parsing, repair.

The check digit comes from python-stdnum; this module adds what a reader needs on top: the
position rules (letters first, digits after), confusable-character repair and the size/type
code parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import product

from stdnum import iso6346 as _stdnum

CATEGORIES = {"U": "freight container", "J": "detachable equipment", "Z": "chassis or trailer"}

_NUMBER_RE = re.compile(r"^[A-Z]{3}[UJZ][0-9]{6}[0-9]$")

# Characters a reader confuses, by the kind of character the position wants.
LETTER_FOR_DIGIT = {"0": "O", "1": "I", "8": "B", "5": "S", "2": "Z", "6": "G", "4": "A", "7": "T"}
DIGIT_FOR_LETTER = {
    "O": "0", "D": "0", "Q": "0", "U": "0", "I": "1", "L": "1", "T": "1", "J": "1",
    "B": "8", "S": "5", "Z": "2", "G": "6", "A": "4",
}

# Size code, first character: length.
LENGTHS = {
    "1": "10 ft", "2": "20 ft", "3": "30 ft", "4": "40 ft", "B": "24 ft", "C": "24 ft 6 in",
    "D": "29 ft 11 in", "E": "35 ft", "F": "40 ft", "G": "41 ft", "H": "43 ft", "K": "44 ft",
    "L": "45 ft", "M": "48 ft", "N": "49 ft", "P": "53 ft",
}
# Size code, second character: height (and width for the letters).
HEIGHTS = {
    "0": "8 ft", "2": "8 ft 6 in", "4": "9 ft", "5": "9 ft 6 in", "6": "over 9 ft 6 in",
    "8": "4 ft 3 in", "9": "4 ft or less", "C": "8 ft 6 in, wide", "D": "9 ft, wide",
    "E": "9 ft 6 in, wide", "F": "over 9 ft 6 in, wide", "L": "8 ft 6 in, wider",
    "M": "9 ft, wider", "N": "9 ft 6 in, wider", "P": "over 9 ft 6 in, wider",
}
# Type code, first character: the type group.
TYPE_GROUPS = {
    "G": "general purpose", "V": "ventilated", "B": "dry bulk", "S": "named cargo",
    "R": "reefer", "H": "insulated", "U": "open top", "P": "platform", "T": "tank",
    "A": "air/surface", "K": "tank (gas)",
}


def check_digit(owner_and_serial: str) -> str:
    """The check digit of the first ten characters (owner code, category, serial)."""
    return str(_stdnum.calc_check_digit(owner_and_serial.upper()))


def is_valid_container_number(number: str | None) -> bool:
    """True for an 11-character number with letters and digits in place and a matching check
    digit. Spaces are ignored; nothing else is forgiven (the kiosk rejects a clerk's typo)."""
    if not number:
        return False
    compact = number.replace(" ", "").upper()
    if not _NUMBER_RE.match(compact):
        return False
    return _stdnum.is_valid(compact)


def normalise(number: str) -> str:
    """Upper case without spaces: the form the gate stores."""
    return number.replace(" ", "").upper()


@dataclass(frozen=True)
class SizeType:
    code: str
    length: str
    height: str
    type_group: str


_SIZE_TYPE_RE = re.compile(r"^([0-9A-Z])([0-9A-Z])([A-Z])([0-9])$")


def parse_size_type(code: str | None) -> SizeType | None:
    """Parse a 4-character size/type code such as `22G1`, `45R1`, `L5G1`; None if it is not one."""
    if not code:
        return None
    code = code.replace(" ", "").upper()
    match = _SIZE_TYPE_RE.match(code)
    if match is None:
        return None
    length, height, group, _detail = match.groups()
    if length not in LENGTHS or height not in HEIGHTS or group not in TYPE_GROUPS:
        return None
    return SizeType(code, LENGTHS[length], HEIGHTS[height], TYPE_GROUPS[group])


# The type detail is a digit; only letters shaped like one are taken for it.
_DETAIL_FOR_LETTER = {"O": "0", "I": "1", "L": "1", "Z": "2", "S": "5", "G": "6", "B": "8"}


def repair_size_type(text: str) -> str | None:
    """Map confusable characters of a 4-character read onto a size/type code, or None."""
    text = text.replace(" ", "").upper()
    if len(text) != 4:
        return None
    length, height, group, detail = text[0], text[1], text[2], text[3]
    if length not in LENGTHS:
        length = DIGIT_FOR_LETTER.get(length, length)
    if height not in HEIGHTS:
        height = DIGIT_FOR_LETTER.get(height, height)
    group = LETTER_FOR_DIGIT.get(group, group)
    detail = _DETAIL_FOR_LETTER.get(detail, detail)
    repaired = length + height + group + detail
    return repaired if parse_size_type(repaired) else None


def coerce_positions(text: str) -> str | None:
    """Map confusable characters onto what each position must hold (letters in 0-3, U/J/Z in 3,
    digits in 4-10). Returns None when a character cannot be mapped."""
    if len(text) != 11:
        return None
    out = []
    for index, char in enumerate(text.upper()):
        if index < 4:
            char = LETTER_FOR_DIGIT.get(char, char)
            if not char.isalpha():
                return None
        else:
            char = DIGIT_FOR_LETTER.get(char, char)
            if not char.isdigit():
                return None
        out.append(char)
    if out[3] not in CATEGORIES:
        return None
    return "".join(out)


def valid_from_alternatives(alternatives: list[list[str]], limit: int = 4096) -> list[str]:
    """Every valid number whose characters are picked from per-position alternatives (best
    first in each list). A caller accepts the answer only when exactly one number results."""
    if len(alternatives) != 11 or any(not alts for alts in alternatives):
        return []
    combinations = 1
    for alts in alternatives:
        combinations *= len(alts)
    if combinations > limit:
        return []
    found = []
    for chars in product(*alternatives):
        candidate = "".join(chars)
        if is_valid_container_number(candidate) and candidate not in found:
            found.append(candidate)
    return found
