"""``PUT/GET /v1/attachments/{sha256}``: private attachments.

See :mod:`carledger.node.attachments` for the storage, the signed requests and roles.

Both requests are signed by a member key; the node checks the signature, the key's
membership at the head and the role the attachment's kind asks for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from carledger.ledger.contracts import BlockContext, Signer
from carledger.ledger.ledger import Ledger
from carledger.node.attachments import AttachmentStore, authenticate
from carledger.node.service import Node

__all__ = ["install"]

_SIGNED = {
    "parameters": [
        {"name": h, "in": "header", "required": False, "schema": {"type": "string"}}
        for h in ("X-Carledger-Key", "X-Carledger-Time", "X-Carledger-Signature")
    ]
}


def install(app: FastAPI, node: Node) -> None:
    ledger = node.ledger
    store = AttachmentStore(Path(ledger.store.path).parent / "attachments")  # type: ignore[attr-defined]

    def signer(request: Request, body: bytes) -> Signer:
        time = node.block_time()
        ctx = BlockContext(ledger.chain_id, ledger.height + 1, time, "attachments")
        return authenticate(
            request.headers,
            state=_State(ledger),
            ctx=ctx,
            method=request.method,
            path=request.url.path,
            body=body,
            now_ms=node.clock_ms(),
        )

    @app.put(
        "/v1/attachments/{sha256}",
        summary="Store a private attachment (signed by a member whose role allows its kind)",
        status_code=201,
        openapi_extra={
            **_SIGNED,
            "requestBody": {"content": {"application/octet-stream": {"schema": {}}}},
        },
    )
    async def put_attachment(
        request: Request, sha256: str, kind: Annotated[str, Query(max_length=40)]
    ) -> JSONResponse:
        body = await request.body()
        content_type = request.headers.get("content-type", "")

        def work() -> JSONResponse:
            who = signer(request, body)
            meta, new = store.put(sha256, body, kind, who, content_type)
            return JSONResponse(
                {"sha256": sha256, "kind": meta["kind"], "size": meta["size"]},
                status_code=201 if new else 200,
            )

        return await run_in_threadpool(work)

    @app.get(
        "/v1/attachments/{sha256}",
        summary="A private attachment, to members whose role (or organisation) is allowed",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}},
        openapi_extra=_SIGNED,
    )
    def get_attachment(request: Request, sha256: str) -> Response:
        found = store.get(sha256, signer(request, b""))
        return Response(
            found.data,
            media_type=str(found.meta["content_type"]),
            headers={"Cache-Control": "private, no-store", "X-Attachment-Kind": found.meta["kind"]},
        )


class _State:
    """The membership state at the head, as the contracts' StateView."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def get(self, key: str) -> Any:
        return self._ledger.state(key)
