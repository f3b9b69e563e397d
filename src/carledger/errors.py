"""The one error tree of carledger.

Every failure a user can cause or meet is a :class:`LedgerError` with a stable,
machine-readable ``code`` (snake_case, never renamed once released) and a human
sentence. The category decides how the boundaries present it::

    LedgerError
    ├── InvalidInput          400  malformed or out-of-range input (decode, schema, VIN)
    ├── Unauthorized          403  a signer lacks the role, is unknown, revoked or expired
    ├── NotFound              404  no such transaction, vehicle, block
    ├── Conflict              409  duplicate transaction, stale per-VIN head
    ├── RuleViolation         422  a contract refused the record (state rules)
    ├── VerificationFailure   422  a signature, proof, hash or checkpoint does not verify
    ├── OrderingError         503  mempool full, ordering service unavailable
    └── StorageError          500  the store is damaged or cannot be written

Inside a block the same ``code`` is the validity code of a refused transaction, so
every node and every reader agree on why a record was refused.

The API maps :attr:`LedgerError.status` to the HTTP status of an RFC 9457 problem;
the CLI prints :meth:`LedgerError.diagnostics`. Foreign exceptions are translated
at each boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "Conflict",
    "InvalidInput",
    "LedgerError",
    "NotFound",
    "OrderingError",
    "RuleViolation",
    "StorageError",
    "Unauthorized",
    "VerificationFailure",
]


class LedgerError(Exception):
    """Root of every carledger error.

    ``code`` is stable and documented in ``docs/errors.md``; ``message`` is a full
    sentence for a person; ``detail`` carries machine-readable context (a field
    name, a height) and never secrets or personal data.
    """

    category: ClassVar[str] = "error"
    status: ClassVar[int] = 500

    def __init__(self, code: str, message: str, **detail: Any) -> None:
        if not code or not code.replace("_", "").isalnum() or code.lower() != code:
            raise ValueError(f"error codes are snake_case, got {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail: dict[str, Any] = detail

    def diagnostics(self) -> str:
        """The text a person reads: the sentence and the stable code."""
        return f"{self.message} [{self.code}]"

    def to_problem(self) -> dict[str, Any]:
        """RFC 9457 problem details (``type`` is a stable, dereferenceable-later URN)."""
        problem: dict[str, Any] = {
            "type": f"urn:carledger:error:{self.code}",
            "title": self.category.replace("_", " "),
            "status": self.status,
            "code": self.code,
            "detail": self.message,
        }
        if self.detail:
            problem["context"] = self.detail
        return problem

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (the submission check workers): rebuilt from
        # code, message and detail, not from ``Exception.args`` (the message alone).
        return (_rebuild, (type(self), self.code, self.message, self.detail))


def _rebuild(
    cls: type[LedgerError], code: str, message: str, detail: dict[str, Any]
) -> LedgerError:
    return cls(code, message, **detail)


class InvalidInput(LedgerError):
    category = "invalid_input"
    status = 400


class Unauthorized(LedgerError):
    category = "unauthorized"
    status = 403


class NotFound(LedgerError):
    category = "not_found"
    status = 404


class Conflict(LedgerError):
    category = "conflict"
    status = 409


class RuleViolation(LedgerError):
    category = "rule_violation"
    status = 422


class VerificationFailure(LedgerError):
    category = "verification_failure"
    status = 422


class OrderingError(LedgerError):
    category = "ordering"
    status = 503


class StorageError(LedgerError):
    category = "storage"
    status = 500
