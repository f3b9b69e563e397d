"""Vehicle identification numbers (ISO 3779), as DOMAIN.md specifies them.

A VIN is 17 characters of ``0-9 A-Z`` without ``I``, ``O`` and ``Q``: WMI
(positions 1-3), VDS (4-9), VIS (10-17). Position 9 is a check digit that is
*enforced* only for North-American WMIs (first character ``1``-``5``, 49 CFR
565.15); for every other region it is reported as ``not_applicable`` and never used
to refuse a VIN.

Two entry points, for two kinds of input:

- :func:`normalise` is for what a person types (CLI, API paths, web forms): it
  strips surrounding blanks and upper-cases, then validates.
- :func:`check_canonical` is for VINs inside signed payloads, whose bytes are never
  rewritten: a lower-case VIN there is refused (``vin_not_canonical``) and the
  client is told to normalise before signing.

Codes: ``invalid_vin`` (not a string), ``invalid_vin_length``,
``invalid_vin_character``, ``invalid_vin_check_digit``, ``vin_not_canonical``.
"""

from __future__ import annotations

from typing import Literal

from carledger.errors import InvalidInput

__all__ = [
    "VIN_LENGTH",
    "CheckDigitStatus",
    "check_canonical",
    "check_digit",
    "check_digit_status",
    "describe",
    "is_north_american",
    "normalise",
]

VIN_LENGTH = 17

CheckDigitStatus = Literal["valid", "invalid", "not_applicable"]

_ALLOWED = frozenset("0123456789ABCDEFGHJKLMNPRSTUVWXYZ")
_TRANSLITERATION: dict[str, int] = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def is_north_american(vin: str) -> bool:
    """True when the WMI is North-American (first character 1-5): the check digit applies."""
    return vin[:1] in {"1", "2", "3", "4", "5"}


def check_digit(vin: str) -> str:
    """The check digit position 9 should hold (``0``-``9`` or ``X``).

    Precondition: ``vin`` has 17 allowed upper-case characters (position 9 itself
    has weight 0 and is ignored).
    """
    total = sum(_TRANSLITERATION[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    rest = total % 11
    return "X" if rest == 10 else str(rest)


def check_digit_status(vin: str) -> CheckDigitStatus:
    """``valid``/``invalid`` for North-American WMIs, ``not_applicable`` elsewhere.

    Precondition: ``vin`` passed :func:`check_canonical`'s length and character checks.
    """
    if not is_north_american(vin):
        return "not_applicable"
    return "valid" if vin[8] == check_digit(vin) else "invalid"


def _check_shape(vin: str, field: str) -> None:
    if len(vin) != VIN_LENGTH:
        raise InvalidInput(
            "invalid_vin_length",
            f"A VIN has {VIN_LENGTH} characters; {field} has {len(vin)}.",
            field=field,
        )
    bad = sorted({c for c in vin if c not in _ALLOWED})
    if bad:
        raise InvalidInput(
            "invalid_vin_character",
            f"{field} contains {', '.join(map(repr, bad))}; a VIN uses 0-9 and A-Z "
            "without I, O and Q.",
            field=field,
        )
    if check_digit_status(vin) == "invalid":
        raise InvalidInput(
            "invalid_vin_check_digit",
            f"{field} fails the North-American check digit: position 9 should be "
            f"{check_digit(vin)!r}, not {vin[8]!r}.",
            field=field,
        )


def _check_ascii(text: str, field: str) -> None:
    # Checked before anything else: str.upper() turns some look-alikes into real VIN
    # letters ('ſ' -> 'S', 'ﬀ' -> 'FF'); a VIN typed with them is refused, never mapped.
    if text.isascii():
        return
    bad = sorted({c for c in text if not c.isascii()})
    if bad:
        raise InvalidInput(
            "invalid_vin_character",
            f"{field} contains {', '.join(map(repr, bad))} (not ASCII: a look-alike of a "
            "letter or digit?); a VIN uses 0-9 and A-Z without I, O and Q.",
            field=field,
        )


def check_canonical(value: object, field: str = "vin") -> str:
    """Validate a VIN from a signed payload, which must already be canonical.

    Raises :class:`InvalidInput`: ``invalid_vin`` (not a string),
    ``vin_not_canonical`` (lower case or blanks: normalise before signing), then the
    length, character and check-digit codes of the module docstring.
    """
    if not isinstance(value, str):
        raise InvalidInput("invalid_vin", f"{field} is a 17-character string.", field=field)
    _check_ascii(value, field)
    if value != value.strip().upper():
        raise InvalidInput(
            "vin_not_canonical",
            f"{field} must be upper case without blanks in a signed record; normalise the "
            "VIN (carledger.vehicle.vin.normalise) before signing.",
            field=field,
        )
    _check_shape(value, field)
    return value


def normalise(text: str, field: str = "vin") -> str:
    """The canonical form of a VIN typed by a person: stripped and upper-cased, then validated.

    Raises the :class:`InvalidInput` codes of the module docstring. Letters that
    look like digits (``O``, ``I``, ``Q``) are refused, never guessed.
    """
    if not isinstance(text, str):
        raise InvalidInput("invalid_vin", f"{field} is a 17-character string.", field=field)
    _check_ascii(text.strip(), field)
    vin = text.strip().upper()
    _check_shape(vin, field)
    return vin


def describe(vin: str) -> dict[str, str]:
    """The parts of a canonical VIN and its check-digit status, for display."""
    check_canonical(vin)
    return {
        "vin": vin,
        "wmi": vin[:3],
        "vds": vin[3:9],
        "vis": vin[9:],
        "check_digit": check_digit_status(vin),
    }
