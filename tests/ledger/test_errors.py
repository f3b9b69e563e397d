"""The error tree: categories, RFC 9457 problems, and docs/errors.md covering every code.

The code inventory is taken from the source itself: the first argument of every
``InvalidInput(...)``, ``Conflict(...)`` etc. in ``src/carledger``, either a string
literal or a module-level ``NAME = "code"`` constant. A new code without a row in
``docs/errors.md`` fails here.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from carledger import errors
from carledger.errors import (
    Conflict,
    InvalidInput,
    LedgerError,
    NotFound,
    OrderingError,
    RuleViolation,
    StorageError,
    Unauthorized,
    VerificationFailure,
)

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "carledger"
DOC = ROOT / "docs" / "errors.md"

CATEGORIES: list[tuple[type[LedgerError], str, int]] = [
    (InvalidInput, "invalid_input", 400),
    (Unauthorized, "unauthorized", 403),
    (NotFound, "not_found", 404),
    (Conflict, "conflict", 409),
    (RuleViolation, "rule_violation", 422),
    (VerificationFailure, "verification_failure", 422),
    (OrderingError, "ordering", 503),
    (StorageError, "storage", 500),
]
CLASS_CATEGORY = {cls.__name__: category for cls, category, _ in CATEGORIES}
CLASS_CATEGORY["LedgerError"] = "error"

#: Validity codes the executor records without raising an error class.
VALIDITY_CODES = {"ok", "contract_error"}


@pytest.mark.parametrize(("cls", "category", "status"), CATEGORIES,
                         ids=[c.__name__ for c, _, _ in CATEGORIES])
def test_category_and_status(cls: type[LedgerError], category: str, status: int) -> None:
    err = cls("some_code", "Something happened.")
    assert isinstance(err, LedgerError)
    assert (err.category, err.status) == (category, status)
    assert (type(err).category, type(err).status) == (category, status)


def test_every_category_is_listed() -> None:
    assert set(LedgerError.__subclasses__()) == {cls for cls, _, _ in CATEGORIES}
    assert set(errors.__all__) == {"LedgerError", *(c.__name__ for c, _, _ in CATEGORIES)}


def test_problem_details_shape() -> None:
    err = Conflict("duplicate_transaction", "This transaction was already committed.")
    assert err.to_problem() == {
        "type": "urn:carledger:error:duplicate_transaction",
        "title": "conflict",
        "status": 409,
        "code": "duplicate_transaction",
        "detail": "This transaction was already committed.",
    }
    with_context = InvalidInput("missing_field", "The envelope lacks nonce.", fields=["nonce"])
    problem = with_context.to_problem()
    assert problem["context"] == {"fields": ["nonce"]}
    assert problem["title"] == "invalid input"
    assert json.loads(json.dumps(problem)) == problem  # plain JSON, ready for the API
    assert with_context.diagnostics() == "The envelope lacks nonce. [missing_field]"
    assert str(with_context) == "The envelope lacks nonce."
    assert repr(with_context) == "InvalidInput('missing_field', 'The envelope lacks nonce.')"


@pytest.mark.parametrize("code", ["", "Bad", "has space", "dash-code", "x!"])
def test_codes_are_snake_case(code: str) -> None:
    with pytest.raises(ValueError, match="snake_case"):
        InvalidInput(code, "x")


# --- the code inventory against docs/errors.md --------------------------------------------

_CALL = re.compile(
    r"(?<!class )\b(" + "|".join(CLASS_CATEGORY) + r")\(\s*"
    r"(?:\"([a-z0-9_]+)\"|([A-Z_][A-Z0-9_]*)\b)"
)


def source_codes() -> dict[str, set[tuple[str, str]]]:
    """code -> {(class name, file:line)} for every error constructed in src/carledger."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for match in _CALL.finditer(text):
            cls, literal, constant = match.groups()
            code = literal
            if code is None:
                const = re.search(
                    rf"^{constant}\s*(?::[^=\n]*)?=\s*\"([a-z0-9_]+)\"", text, re.MULTILINE
                )
                if const is None:
                    continue  # a parameter passed through (its callers pass literals)
                code = const.group(1)
            line = text.count("\n", 0, match.start()) + 1
            found[code].add((cls, f"{path.relative_to(SRC)}:{line}"))
    return dict(found)


def documented_codes() -> dict[str, str]:
    """code -> the category column of its row in docs/errors.md."""
    rows: dict[str, str] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*`([a-z0-9_]+)`\s*\|\s*([^|]+?)\s*\|", line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} has two rows"
            rows[match.group(1)] = match.group(2)
    return rows


def test_inventory_finds_the_core_codes() -> None:
    codes = source_codes()
    for code in ("not_canonical", "duplicate_transaction", "signer_revoked",
                 "inclusion_proof_invalid", "genesis_mismatch"):
        assert code in codes
    assert len(codes) > 60


def test_every_code_in_the_source_is_documented() -> None:
    documented = documented_codes()
    missing = {
        code: sorted(where for _, where in places)
        for code, places in source_codes().items()
        if code not in documented
    }
    assert not missing, f"codes without a row in docs/errors.md: {missing}"
    for code in VALIDITY_CODES:
        assert code in documented


def test_documented_category_matches_the_source() -> None:
    documented = documented_codes()
    wrong = {}
    for code, places in source_codes().items():
        if code not in documented:
            continue
        categories = {CLASS_CATEGORY[cls] for cls, _ in places}
        if not any(documented[code].startswith(cat) for cat in categories):
            wrong[code] = (documented[code], sorted(categories))
    assert not wrong, wrong


def test_each_code_has_one_category() -> None:
    # A client (and docs/errors.md) maps a code to one HTTP status; a code raised
    # as two categories answers differently depending on where it was caught.
    split = {
        code: sorted({(cls, where) for cls, where in places})
        for code, places in source_codes().items()
        if len({CLASS_CATEGORY[cls] for cls, _ in places}) > 1
    }
    assert not split, split
