"""The node's HTTP API (FastAPI). OpenAPI at ``/docs`` and ``/openapi.json``.

Paths (``/v1``): ``POST /transactions`` (one transaction or a JSON array of up to
1,000; ``?wait=true`` waits for commit), ``GET /transactions/{id}`` (with its
inclusion proof), ``GET /vehicles/{vin}``, ``/vehicles/{vin}/history``,
``/vehicles/{vin}/report``, ``GET /listings``, ``GET /blocks``,
``GET /blocks/{height}``, ``GET /checkpoint``, ``GET /proofs/consistency``,
``GET /events`` (server-sent events, resumable). Also ``/healthz`` and ``/metrics``.

Every error is an RFC 9457 problem with a stable ``code`` (see ``problems.py``).
Handlers are plain ``def``: FastAPI runs them in its thread pool, which lets
signature checks of concurrent submissions use both cores (libsodium releases the
GIL).
"""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from carledger import __version__
from carledger.api.attachments import install as install_attachments
from carledger.api.problems import install, problem_response
from carledger.errors import InvalidInput, LedgerError, OrderingError
from carledger.node import vehicle_views, views
from carledger.node.prechecks import MAX_BATCH
from carledger.node.service import Node

__all__ = ["MAX_BATCH", "MAX_REQUEST_BYTES", "create_app"]

MAX_REQUEST_BYTES = 8 * 1024 * 1024

_TX_SCHEMA = {
    "type": "object",
    "required": ["body", "signatures"],
    "additionalProperties": False,
    "properties": {
        "body": {"type": "string", "description": "standard base64 of the canonical body"},
        "signatures": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
    },
}


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, before reading them whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._too_large(scope, receive, send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            InvalidInput(
                "body_too_large", f"Request bodies are at most {self.limit} bytes."
            ).to_problem()
            | {"status": 413}
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(node: Node) -> FastAPI:
    app = FastAPI(
        title="carledger node",
        version=__version__,
        description="A permissioned ledger for the life of a vehicle and used-car trading.",
    )

    def damaged(text: str) -> None:
        node.problem = text  # /healthz answers degraded until the next block commits

    install(app, damaged)
    app.add_middleware(BodyLimit, limit=MAX_REQUEST_BYTES)
    ledger = node.ledger

    @app.post(
        "/v1/transactions",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                _TX_SCHEMA,
                                {"type": "array", "items": _TX_SCHEMA, "maxItems": MAX_BATCH},
                            ]
                        }
                    }
                },
            }
        },
        summary="Submit one signed transaction, or an array of them",
        status_code=202,
    )
    async def submit(
        request: Request,
        wait: bool = False,
        timeout: Annotated[float, Query(gt=0, le=60)] = 30.0,
    ) -> Response:
        # The body is read raw: it is decoded strictly (duplicate keys, depth) and
        # each transaction's signed bytes are taken exactly as sent.
        raw = await request.body()
        return await run_in_threadpool(_submit, raw, wait, timeout)

    def _submit(raw: bytes, wait: bool, timeout: float) -> Response:
        submission = node.decode_submission(raw)
        single, txs = submission.single, submission.items
        outcomes = iter(
            node.submit(
                submission.transactions,
                wait=wait,
                timeout=timeout,
                prechecked=submission.checked,
            )
        )
        results: list[dict[str, Any]] = []
        for item in txs:
            if isinstance(item, LedgerError):
                results.append({"id": None, "status": "rejected", "error": item.to_problem()})
            else:
                results.append(next(outcomes).to_dict())
        if not single:
            return JSONResponse({"results": results})
        only = results[0]
        if only["status"] == "rejected":
            error = only["error"]
            headers = None
            retry = error.get("context", {}).get("retry_after")
            if retry is not None:
                headers = {"Retry-After": str(retry)}
            return problem_response(error, headers)
        if only["status"] == "refused":
            return problem_response(only["error"])
        status = 200 if only["status"] == "committed" else 202
        return JSONResponse(only, status_code=status)

    @app.get("/v1/transactions/{tx_id}", summary="A committed transaction with its proof")
    def get_transaction(tx_id: str) -> dict[str, Any]:
        return views.transaction_view(ledger, tx_id)

    @app.get("/v1/vehicles", summary="VINs with records on this chain, in VIN order")
    def get_vehicles(
        after: str = "",
        limit: Annotated[int, Query(ge=1, le=views.MAX_PAGE)] = 50,
    ) -> dict[str, Any]:
        return vehicle_views.vehicles_view(ledger, after=after, limit=limit)

    @app.get("/v1/vehicles/{vin}", summary="A vehicle's current state and derived facts")
    def get_vehicle(vin: str) -> dict[str, Any]:
        return vehicle_views.vehicle_view(ledger, vin)

    @app.get("/v1/vehicles/{vin}/history", summary="All records of a VIN, oldest first")
    def get_history(
        vin: str,
        after: Annotated[int, Query(ge=-1)] = -1,
        limit: Annotated[int, Query(ge=1, le=views.MAX_PAGE)] = 100,
    ) -> dict[str, Any]:
        return vehicle_views.history_view(ledger, vin, after=after, limit=limit)

    @app.get(
        "/v1/vehicles/{vin}/report",
        summary="The verifiable report of a VIN (JSON, or a printable PDF)",
        responses={200: {"content": {"application/pdf": {}}}},
    )
    def get_report(
        request: Request,
        vin: str,
        since: Annotated[
            int | None, Query(ge=1, description="Add a consistency proof from this log size.")
        ] = None,
        fmt: Annotated[str, Query(alias="format", pattern="^(json|pdf)$")] = "json",
    ) -> Response:
        from carledger.report.build import report_for

        if node.diverged:
            # A node outvoted by a certified quorum must not vouch for anything.
            raise OrderingError(
                "node_diverged",
                "This node's state differs from the certified chain; ask another node.",
                retry_after=60,
            )
        doc = report_for(ledger, vin, since=since)
        if fmt == "json":
            return JSONResponse(doc)
        from carledger.report.pdf import render_pdf

        pdf = render_pdf(doc, base_url=str(request.base_url))
        name = f"carledger-report-{doc['vin']}-{doc['header']['height']}.pdf"
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{name}"'},
        )

    @app.get("/v1/listings", summary="Cars listed for sale")
    def get_listings(
        market: str | None = None,
        make: str | None = None,
        min_price: Annotated[int | None, Query(ge=0)] = None,
        max_price: Annotated[int | None, Query(ge=0)] = None,
        after: str = "",
        limit: Annotated[int, Query(ge=1, le=views.MAX_PAGE)] = 50,
    ) -> dict[str, Any]:
        return vehicle_views.listings_view(
            ledger,
            market=market,
            make=make,
            min_price=min_price,
            max_price=max_price,
            after=after,
            limit=limit,
        )

    @app.get("/v1/blocks", summary="Latest blocks, newest first")
    def get_blocks(
        before: Annotated[int | None, Query(ge=0)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        top = ledger.height if before is None else min(before - 1, ledger.height)
        heights = range(top, max(-1, top - limit), -1)
        return {"height": ledger.height, "blocks": [views.block_view(ledger, h) for h in heights]}

    @app.get("/v1/blocks/{height}", summary="One block: header, transactions, checkpoint")
    def get_block(height: int) -> dict[str, Any]:
        return views.block_view(ledger, height)

    @app.get(
        "/v1/blocks/{height}/transactions",
        summary="One block's raw transactions (wire form), in block order",
    )
    def get_block_transactions(height: int) -> dict[str, Any]:
        # What a peer replays when it catches up (checked against the block's certificate).
        return views.block_transactions_view(ledger, height)

    @app.get("/v1/checkpoint", summary="The latest checkpoint with validator signatures")
    def get_checkpoint() -> dict[str, Any]:
        return views.checkpoint_view(ledger)

    @app.get("/v1/proofs/consistency", summary="RFC 9162 consistency proof between log sizes")
    def get_consistency(first: int, second: int) -> dict[str, Any]:
        return views.consistency_view(ledger, first, second)

    @app.get(
        "/v1/events",
        summary="Server-sent events of committed records",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    def get_events(
        request: Request,
        from_height: Annotated[int | None, Query(ge=0)] = None,
    ) -> StreamingResponse:
        last = request.headers.get("last-event-id")
        if last is not None:
            if not last.isdigit():
                raise InvalidInput("invalid_event_id", "Last-Event-ID is a record index.")
            after_seq = int(last)
        elif from_height is not None and from_height > ledger.height + 1:
            after_seq = ledger.head.log_size - 1  # a future height: what comes from now on
        elif from_height is not None:
            raw = ledger.store.block(from_height - 1) if from_height > 0 else None  # type: ignore[attr-defined]
            after_seq = -1 if raw is None else _log_size(raw) - 1
        else:
            after_seq = ledger.head.log_size - 1
        return StreamingResponse(
            _event_stream(node, after_seq),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/healthz", summary="Liveness and state of this node")
    def healthz() -> JSONResponse:
        status = node.status()
        return JSONResponse(status, status_code=200 if status["status"] == "ok" else 503)

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    def metrics() -> Response:
        node.metrics.mempool.set(node.ordering.pending())
        return Response(generate_latest(node.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    from carledger.web import install as install_web

    install_web(app, node)
    install_attachments(app, node)
    return app


def _log_size(raw_header: bytes) -> int:
    return int(json.loads(raw_header)["log_size"])


def _event(tx_seq: int, payload: dict[str, Any]) -> bytes:
    return f"id: {tx_seq}\nevent: record\ndata: {json.dumps(payload)}\n\n".encode()


def _event_stream(node: Node, after_seq: int) -> Iterator[bytes]:
    """Catch up from the store after ``after_seq``, then follow live commits."""
    hub = node.events
    q = hub.subscribe()
    store = node.ledger.store
    try:
        sent = after_seq
        while True:
            head_size = node.ledger.head.log_size
            if sent + 1 >= head_size:
                break
            for tx in store.txs_range(sent + 1, min(head_size, sent + 501)):  # type: ignore[attr-defined]
                envelope = json.loads(tx.body)
                yield _event(
                    tx.seq, vehicle_views.event_payload(tx.seq, tx.height, tx.id, tx.code, envelope)
                )
                sent = tx.seq
        yield b": live\n\n"
        while True:
            try:
                block = q.get(timeout=15)
            except queue.Empty:
                yield b": keep-alive\n\n"
                continue
            if block is None:
                return
            for i, result in enumerate(block.results):
                seq = block.first_seq + i
                if seq <= sent:
                    continue
                envelope = json.loads(result.raw.body) if result.type else {}
                yield _event(
                    seq,
                    vehicle_views.event_payload(
                        seq, block.header.height, result.id, result.code, envelope
                    ),
                )
                sent = seq
    finally:
        hub.unsubscribe(q)
