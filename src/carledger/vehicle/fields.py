"""Field specs shared by the record schemas, and the shapes of references.

Owners and parties appear only as pseudonymous references (no personal data on
chain). A reference is one of:

- ``key:<64 hex>``: the holder of an Ed25519 key (a citizen's own key); that key
  can sign for the party;
- ``org:<org id>``: a member organisation (a dealer, a rental firm); any enrolled
  member of it can sign for the party;
- ``ref:<16-64 hex>``: an opaque pseudonym kept by the registry (for example a
  salted hash of a resident number); it cannot sign, so only the registry can
  move a car away from it or to it without the party.
"""

from __future__ import annotations

from carledger.vehicle import vin as _vin
from carledger.vehicle.schema import Custom, Date, Enum, Hex, Int, Nullable, Str

__all__ = [
    "DATE",
    "FUELS",
    "HASH",
    "ID",
    "KM",
    "KRW",
    "LISTING_NO",
    "MAX_KM_VALUE",
    "MAX_KRW",
    "NAME",
    "ORG",
    "PLATE",
    "PREV",
    "REASON",
    "REF",
    "SERIAL",
    "TEXT",
    "TXID",
    "USES",
    "VIN",
    "ref_key",
    "ref_org",
]

#: Distances are whole km. Readings up to this are accepted (and flagged when
#: implausible, never refused: a recorded reading is evidence).
MAX_KM_VALUE = 99_999_999
#: Amounts are whole KRW (10 trillion: far above any vehicle price or lien).
MAX_KRW = 10_000_000_000_000

VIN = Custom(lambda value, path: _vin.check_canonical(value, path or "vin"))
TXID = Hex(64)
PREV = Nullable(TXID)
HASH = Hex(64)
DATE = Date()
KM = Int(0, MAX_KM_VALUE)
KRW = Int(0, MAX_KRW)
ID = Str(1, 64, r"[a-z0-9][a-z0-9-]{0,63}", "a-z, 0-9 and '-'")
ORG = ID
NAME = Str(1, 100)
TEXT = Str(1, 1000)
REASON = Str(1, 500)
REF = Str(
    5,
    68,
    r"key:[0-9a-f]{64}|org:[a-z0-9][a-z0-9-]{0,63}|ref:[0-9a-f]{16,64}",
    "key:<public key hex>, org:<org id> or ref:<hex pseudonym>",
)
#: Korean plates such as ``12가3456``, ``123가4567`` or ``서울12가3456``: digits,
#: Hangul syllables and capital letters, no blanks.
PLATE = Str(4, 16, r"[0-9A-Z\uac00-\ud7a3]{4,16}", "digits and Hangul without blanks")
LISTING_NO = Str(1, 32, r"[A-Za-z0-9][A-Za-z0-9-]{0,31}", "letters, digits and '-'")
SERIAL = Str(1, 64, r"[A-Z0-9][A-Z0-9._-]{0,63}", "upper-case letters, digits, '.', '_', '-'")
FUELS = Enum("gasoline", "diesel", "lpg", "hybrid", "plugin_hybrid", "ev", "hydrogen")
USES = Enum("private", "commercial", "rental", "lease", "government", "taxi")


def ref_key(ref: str | None) -> str | None:
    """The public key behind a ``key:`` reference, else None."""
    return ref[4:] if ref is not None and ref.startswith("key:") else None


def ref_org(ref: str | None) -> str | None:
    """The organisation behind an ``org:`` reference, else None."""
    return ref[4:] if ref is not None and ref.startswith("org:") else None
