"""VINs exactly as DOMAIN.md says: 17 characters, no I/O/Q, upper case, and the
North-American check digit (with X) enforced only for WMIs starting with 1-5."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carledger.errors import InvalidInput
from carledger.vehicle import vin

ALLOWED = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
# The transliteration and weights of 49 CFR 565.15, written out independently.
VALUES = dict(zip("0123456789", range(10), strict=True)) | {
    "A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 6, "G": 7, "H": 8,
    "J": 1, "K": 2, "L": 3, "M": 4, "N": 5, "P": 7, "R": 9,
    "S": 2, "T": 3, "U": 4, "V": 5, "W": 6, "X": 7, "Y": 8, "Z": 9,
}  # fmt: skip
WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]


def reference_check_digit(text: str) -> str:
    total = sum(VALUES[c] * w for c, w in zip(text, WEIGHTS, strict=True))
    return "X" if total % 11 == 10 else str(total % 11)


def test_the_documented_example_is_valid() -> None:
    assert vin.check_canonical("1G4AH59H45G118341") == "1G4AH59H45G118341"
    assert vin.check_digit_status("1G4AH59H45G118341") == "valid"


def test_check_digit_x() -> None:
    assert vin.check_digit("1M8GDM9AXKP042788") == "X"
    vin.check_canonical("1M8GDM9AXKP042788")
    with pytest.raises(InvalidInput) as info:
        vin.check_canonical("1M8GDM9A1KP042788")
    assert info.value.code == "invalid_vin_check_digit"
    assert "'X'" in info.value.message


def test_other_regions_never_refuse_on_the_check_digit() -> None:
    for text in (
        "KMHLM41D0R0000001",
        "KNAGM4A75D5123456",
        "WVWZZZ1JZXW000001",
        "JT2AE09W0P0000001",
    ):
        assert vin.check_digit_status(text) == "not_applicable"
        vin.check_canonical(text)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("1G4AH59H45G11834", "invalid_vin_length"),
        ("1G4AH59H45G1183411", "invalid_vin_length"),
        ("", "invalid_vin_length"),
        ("1G4AH59H45G11834I", "invalid_vin_character"),
        ("KMHLM41D0R000000O", "invalid_vin_character"),
        ("KMHLM41D0R000000Q", "invalid_vin_character"),
        ("KMHLM41D0R00000-1", "invalid_vin_character"),
        ("1G4AH59H55G118341", "invalid_vin_check_digit"),
        ("1g4ah59h45g118341", "vin_not_canonical"),
        (" 1G4AH59H45G118341", "vin_not_canonical"),
        (17, "invalid_vin"),
        (None, "invalid_vin"),
    ],
)
def test_signed_payload_vins_are_refused_with_a_clear_code(text: object, code: str) -> None:
    with pytest.raises(InvalidInput) as info:
        vin.check_canonical(text)
    assert info.value.code == code


def test_user_input_is_normalised() -> None:
    assert vin.normalise("  1g4ah59h45g118341 ") == "1G4AH59H45G118341"
    assert vin.normalise("kmhlm41d0r0000001") == "KMHLM41D0R0000001"
    with pytest.raises(InvalidInput) as info:
        vin.normalise("1g4ah59h45g11834o")  # a lower-case o is still an O, not a zero
    assert info.value.code == "invalid_vin_character"


def test_describe() -> None:
    assert vin.describe("1G4AH59H45G118341") == {
        "vin": "1G4AH59H45G118341",
        "wmi": "1G4",
        "vds": "AH59H4",
        "vis": "5G118341",
        "check_digit": "valid",
    }


@given(
    st.sampled_from("12345"),
    st.text(alphabet=ALLOWED, min_size=16, max_size=16),
)
def test_check_digit_matches_the_reference(first: str, rest: str) -> None:
    text = first + rest
    expected = reference_check_digit(text)
    assert vin.check_digit(text) == expected
    fixed = text[:8] + expected + text[9:]
    assert vin.check_canonical(fixed) == fixed
    for wrong in "0123456789X":
        if wrong != expected:
            assert vin.check_digit_status(fixed[:8] + wrong + fixed[9:]) == "invalid"


@given(st.text(alphabet=ALLOWED, min_size=17, max_size=17))
def test_normalise_is_idempotent_and_case_blind(text: str) -> None:
    if vin.check_digit_status(text) == "invalid":
        return
    assert vin.normalise(text.lower()) == vin.normalise(text) == text
