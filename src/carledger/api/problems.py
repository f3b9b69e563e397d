"""RFC 9457 problem details for every error the API returns.

:class:`~carledger.errors.LedgerError` maps to its category's status with its
stable ``code``; FastAPI's own validation errors and unknown paths are translated
into the same shape, so a client handles one error format.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from carledger.errors import LedgerError, StorageError

__all__ = ["install", "problem_response"]

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


def problem_response(
    problem: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(problem, status_code=problem["status"], media_type=PROBLEM, headers=headers)


def ledger_problem(exc: LedgerError) -> JSONResponse:
    headers = None
    retry = exc.detail.get("retry_after")
    if retry is not None:
        headers = {"Retry-After": str(retry)}
    return problem_response(exc.to_problem(), headers)


def _simple(status: int, code: str, detail: str) -> dict[str, Any]:
    return {
        "type": f"urn:carledger:error:{code}",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": detail,
    }


def install(app: FastAPI, on_storage_error: Callable[[str], None] | None = None) -> None:
    """Answer every error as a problem. ``on_storage_error`` hears of a damaged store."""

    @app.exception_handler(sqlite3.DatabaseError)
    async def _store(request: Request, exc: sqlite3.DatabaseError) -> JSONResponse:
        # SQLite noticed damage (a torn or truncated page, an I/O error): refuse to
        # answer rather than answer from a damaged store, and say so on /healthz.
        error = StorageError(
            "store_damaged",
            f"The node's store is damaged ({exc}); this node cannot answer {request.url.path} "
            "reliably. Ask another node; operators: run `carledger verify`.",
        )
        log.error("store damaged while serving %s: %s", request.url.path, exc)
        if on_storage_error is not None:
            on_storage_error(error.diagnostics())
        return ledger_problem(error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug: the client still gets a problem with a code, never a bare 500 page.
        del request, exc
        return problem_response(
            _simple(500, "internal_error", "The node failed to answer; the failure is logged.")
        )

    @app.exception_handler(LedgerError)
    async def _ledger(request: Request, exc: LedgerError) -> JSONResponse:
        del request
        if isinstance(exc, StorageError) and on_storage_error is not None:
            on_storage_error(exc.diagnostics())
        return ledger_problem(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        del request
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return problem_response(
            _simple(400, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}")
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        del request
        codes = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
        code = codes.get(exc.status_code, "http_error")
        return problem_response(_simple(exc.status_code, code, str(exc.detail)))
