"""ISO 6346 helpers: check digit, validation, size/type codes, confusable-character repair."""

from __future__ import annotations

import pytest

from ocr import iso6346


@pytest.mark.parametrize(
    ("owner_and_serial", "digit"),
    [("TGHU787003", "6"), ("CSQU305438", "3"), ("FFFZ016393", "7"), ("BEAU265693", "1")],
)
def test_check_digit(owner_and_serial: str, digit: str) -> None:
    assert iso6346.check_digit(owner_and_serial) == digit


@pytest.mark.parametrize("number", ["TGHU7870036", "tghu 787003 6", "CSQU3054383", "FFFZ0163937"])
def test_valid_numbers(number: str) -> None:
    assert iso6346.is_valid_container_number(number)


@pytest.mark.parametrize(
    "number",
    [
        None, "", "TGHU7870037",  # wrong check digit
        "TGHU787003", "TGHU78700366",  # length
        "TGHX7870036",  # category must be U, J or Z
        "TGH07870036", "TGHU78O0036",  # letter/digit in the wrong place
        "TGHU-787003-6",
    ],
)
def test_invalid_numbers(number: str | None) -> None:
    assert not iso6346.is_valid_container_number(number)


@pytest.mark.parametrize(
    ("code", "length", "height", "group"),
    [
        ("22G1", "20 ft", "8 ft 6 in", "general purpose"),
        ("42G1", "40 ft", "8 ft 6 in", "general purpose"),
        ("45R1", "40 ft", "9 ft 6 in", "reefer"),
        ("L5G1", "45 ft", "9 ft 6 in", "general purpose"),
        ("22U1", "20 ft", "8 ft 6 in", "open top"),
        ("22T1", "20 ft", "8 ft 6 in", "tank"),
    ],
)
def test_parse_size_type(code: str, length: str, height: str, group: str) -> None:
    parsed = iso6346.parse_size_type(code)
    assert parsed is not None
    assert (parsed.length, parsed.height, parsed.type_group) == (length, height, group)


@pytest.mark.parametrize("code", [None, "", "22G", "22G1X", "Z2G1", "2XG1", "22X1", "22GG"])
def test_parse_size_type_rejects(code: str | None) -> None:
    assert iso6346.parse_size_type(code) is None


def test_repair_size_type_maps_confusions_by_position() -> None:
    assert iso6346.repair_size_type("2261") == "22G1"
    assert iso6346.repair_size_type("Z2GI") == "22G1"
    assert iso6346.repair_size_type("45RI") == "45R1"
    assert iso6346.repair_size_type("L5G1") == "L5G1"  # L is a real length code
    assert iso6346.repair_size_type("22?1") is None


def test_coerce_positions() -> None:
    assert iso6346.coerce_positions("0OLU7531290") == "OOLU7531290"
    assert iso6346.coerce_positions("TGHU78700S6") == "TGHU7870056"
    assert iso6346.coerce_positions("B8AU2656931") == "BBAU2656931"
    assert iso6346.coerce_positions("TGHX7870036") is None  # X is no category
    assert iso6346.coerce_positions("TGHU78700?6") is None
    assert iso6346.coerce_positions("TGHU787003") is None


def test_repair_only_when_exactly_one_fits() -> None:
    # True number TGHU7870036; the reader saw 8 for the 3 and offers 3 as second choice.
    alternatives = [[c] for c in "TGHU7870086"]
    alternatives[9] = ["8", "3"]
    assert iso6346.valid_from_alternatives(alternatives) == ["TGHU7870036"]
    # Two doubtful positions whose alternatives make two different valid numbers: refuse.
    ambiguous = [[c] for c in "TGHU7870036"]
    ambiguous[5] = ["8", "6"]
    ambiguous[10] = ["6", "0", "1", "2", "3", "4", "5", "7", "8", "9"]
    assert len(iso6346.valid_from_alternatives(ambiguous)) == 2
    # Nothing fits.
    assert iso6346.valid_from_alternatives([[c] for c in "TGHU7870037"]) == []
    # Too many combinations are not searched.
    assert iso6346.valid_from_alternatives([list("0123456789")] * 11) == []


def test_repair_size_type_does_not_turn_an_owner_code_into_one() -> None:
    assert iso6346.repair_size_type("KMBU") is None
    assert iso6346.repair_size_type("22GO") == "22G0"
