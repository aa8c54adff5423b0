"""FASC-N decoding and encoding: the published vector, every kind of error, round trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.fascn import Fascn, FascnError, decode, decode_ascii, decode_hex, from_digits
from gated.cli import main

VECTOR = "D0439458210C2C19A0846D83685A1082108CE73984108CA3FC"


def _flip_bit(hex_text: str, bit: int) -> str:
    value = int(hex_text, 16) ^ (1 << (199 - bit))
    return f"{value:050X}"


def test_published_vector_decodes_to_its_fields() -> None:
    fascn = decode_hex(VECTOR)
    assert fascn.fields() == {
        "agency": "0032",
        "system": "0001",
        "credential": "092446",
        "series": "0",
        "issue": "1",
        "person": "1112223333",
        "category": "1",
        "organisation": "1223",
        "association": "2",
    }
    assert fascn.to_hex() == VECTOR
    assert decode(fascn.to_ascii()) == fascn
    assert decode(fascn.digits()) == fascn
    assert decode(VECTOR.lower()) == fascn


def test_repr_and_str_are_masked() -> None:
    fascn = decode_hex(VECTOR)
    for text in (repr(fascn), str(fascn), f"{fascn}", repr([fascn])):
        assert "1112223333" not in text
        assert "092446" not in text
        assert "2446" in text


@pytest.mark.parametrize("bit", [0, 7, 52, 123, 199])
def test_a_flipped_bit_is_a_parity_error_at_its_character(bit: int) -> None:
    with pytest.raises(FascnError) as caught:
        decode_hex(_flip_bit(VECTOR, bit))
    assert caught.value.kind == "parity"
    assert caught.value.position == bit // 5 + 1
    assert f"character {bit // 5 + 1}" in str(caught.value)


def _encode_values(values: list[int], fix_lrc: bool = True) -> str:
    from drivers.fascn import _ENCODE

    values = list(values)
    if fix_lrc:
        lrc = 0
        for value in values[:-1]:
            lrc ^= value
        values[-1] = lrc
    bits = 0
    for value in values:
        bits = (bits << 5) | _ENCODE[value]
    return f"{bits:050X}"


def _values(hex_text: str) -> list[int]:
    from drivers.fascn import _DECODE

    bits = int(hex_text, 16)
    return [_DECODE[(bits >> (5 * (39 - i))) & 0x1F] for i in range(40)]


def test_wrong_lrc_with_good_parity_is_an_lrc_error() -> None:
    values = _values(VECTOR)
    values[-1] ^= 0x3
    with pytest.raises(FascnError) as caught:
        decode_hex(_encode_values(values, fix_lrc=False))
    assert caught.value.kind == "lrc"


def test_non_digit_with_good_parity_and_lrc_is_rejected() -> None:
    values = _values(VECTOR)
    values[12] = 0xA  # inside the credential number
    with pytest.raises(FascnError) as caught:
        decode_hex(_encode_values(values))
    assert caught.value.kind == "non_digit"
    assert caught.value.position == 13


@pytest.mark.parametrize(
    ("index", "kind"), [(0, "sentinel"), (5, "separator"), (38, "sentinel")]
)
def test_markers_are_checked(index: int, kind: str) -> None:
    values = _values(VECTOR)
    values[index] = 0x3
    with pytest.raises(FascnError) as caught:
        decode_hex(_encode_values(values))
    assert caught.value.kind == kind
    assert caught.value.position == index + 1


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("D0439458", "length"),
        ("Z" * 50, "hex"),
        ("0032,0001,09244X,0,1,1112223333112232", "format"),
        ("0032,0001,092446,0,1,111222333311223", "format"),
    ],
)
def test_malformed_text(text: str, kind: str) -> None:
    with pytest.raises(FascnError) as caught:
        decode(text)
    assert caught.value.kind == kind


@given(st.text(alphabet="0123456789", min_size=32, max_size=32))
def test_round_trip_of_any_digits(digits: str) -> None:
    fascn = from_digits(digits)
    assert decode_hex(fascn.to_hex()) == fascn
    assert decode_ascii(fascn.to_ascii()) == fascn


def test_field_widths_are_enforced() -> None:
    with pytest.raises(FascnError):
        Fascn("32", "0001", "092446", "0", "1", "1112223333", "1", "1223", "2")


def test_cli_decode_prints_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["credential", "decode", VECTOR]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["credential"] == "092446"
    assert printed["hex"] == VECTOR


def test_cli_decode_names_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["credential", "decode", _flip_bit(VECTOR, 52)]) == 1
    out = capsys.readouterr()
    assert "parity error at character 11" in out.err
    assert json.loads(out.out)["error"] == "parity"
