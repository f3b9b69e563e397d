"""The error tree: categories, RFC 9457 problems, and docs/errors.md covering every code.

The code inventory is taken from the source itself: the first argument of every
``InvalidInput(...)``, ``Conflict(...)`` etc. in ``src/carledger``: a string literal,
a module-level ``NAME = "code"`` constant, or a helper's parameter whose callers in
the same module pass literals. A new code without a row in ``docs/errors.md`` fails
here, and so does a code the inventory cannot see.
"""

from __future__ import annotations

import ast
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


@pytest.mark.parametrize(
    ("cls", "category", "status"), CATEGORIES, ids=[c.__name__ for c, _, _ in CATEGORIES]
)
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


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _enclosing_function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> ast.FunctionDef | None:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return node  # type: ignore[return-value]
    return None


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


class _Module:
    """Resolves the code argument of error constructors in one source file.

    An AST rather than a regex: codes also reach the constructor through module
    constants (``_INCLUSION_INVALID = "..."``) and through helper parameters
    (``_target(ctx, "not_correctable")`` -> ``RuleViolation(code, ...)``).
    """

    def __init__(self, text: str) -> None:
        self.tree = ast.parse(text)
        self.parents = _parents(self.tree)
        self.constants: dict[str, str] = {}
        for node in self.tree.body:
            target = value = None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign):
                target, value = node.target, node.value
            if (
                isinstance(target, ast.Name)
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
            ):
                self.constants[target.id] = value.value
        self.calls = [n for n in ast.walk(self.tree) if isinstance(n, ast.Call)]

    def resolve(self, expr: ast.expr, at: ast.AST, depth: int = 0) -> list[str] | None:
        """The string codes ``expr`` can take, or None if they cannot be seen statically."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return [expr.value]
        if isinstance(expr, ast.IfExp):
            body, orelse = self.resolve(expr.body, at, depth), self.resolve(expr.orelse, at, depth)
            return None if body is None or orelse is None else body + orelse
        if not isinstance(expr, ast.Name) or depth > 3:
            return None
        if expr.id in self.constants:
            return [self.constants[expr.id]]
        func = _enclosing_function(at, self.parents)
        if func is None:
            return None
        params = [a.arg for a in (*func.args.posonlyargs, *func.args.args)]
        if expr.id not in params and expr.id not in [a.arg for a in func.args.kwonlyargs]:
            return None
        index = params.index(expr.id) if expr.id in params else None
        codes: list[str] = []
        for call in self.calls:
            if _callee(call) != func.name:
                continue
            arg = next((k.value for k in call.keywords if k.arg == expr.id), None)
            if arg is None and index is not None and index < len(call.args):
                arg = call.args[index]
            if arg is None:
                continue
            found = self.resolve(arg, call, depth + 1)
            if found is None:
                return None
            codes += found
        return codes or None


def _inventory() -> tuple[dict[str, set[tuple[str, str]]], list[str]]:
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    unseen: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        module = _Module(path.read_text(encoding="utf-8"))
        for call in module.calls:
            cls = _callee(call)
            if cls not in CLASS_CATEGORY or not call.args:
                continue
            where = f"{path.relative_to(SRC)}:{call.lineno}"
            codes = module.resolve(call.args[0], call)
            if codes is None:
                unseen.append(where)
                continue
            for code in codes:
                found[code].add((cls, where))
    return dict(found), unseen


def source_codes() -> dict[str, set[tuple[str, str]]]:
    """code -> {(class name, file:line)} for every error constructed in src/carledger."""
    return _inventory()[0]


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
    for code in (
        "not_canonical",
        "duplicate_transaction",
        "signer_revoked",
        "inclusion_proof_invalid",
        "genesis_mismatch",
    ):
        assert code in codes
    assert len(codes) > 60


def test_every_error_code_is_statically_visible() -> None:
    # A code computed at run time could never be checked against docs/errors.md.
    unseen = _inventory()[1]
    assert not unseen, f"error codes the inventory cannot resolve (use a literal): {unseen}"


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
