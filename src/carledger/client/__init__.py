"""The Python client of a carledger node: what a dealer association's system uses.

Example (see ``docs/client.md``)::

    from carledger.client import Client, load_key

    key = load_key("dealer.key", passphrase=b"...")
    with Client("http://127.0.0.1:8000", key) as node:
        receipt = node.record(
            "trade.purchase",
            {"vin": "KMHD841CBLU123456", "seller_ref": "...", "date": "2026-11-20",
             "price": 15_500_000, "odometer_km": 61_200, "market": "janganpyeong"},
        )
        print(receipt["height"], receipt["code"])
        for entry in node.history("KMHD841CBLU123456"):
            print(entry["type"], entry["signers"][0]["org"])

:meth:`Client.record` fills in the VIN's ``prev`` link from the node and, when
another writer got there first (``stale_head``), re-reads and signs again.
Transport failures and ``503`` (a full mempool) are retried with the server's
``Retry-After``. Errors reach the caller as :class:`carledger.errors.LedgerError`
subclasses carrying the node's stable ``code``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from carledger.crypto.keys import SigningKey
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
from carledger.ledger.tx import Transaction, build_body, sign

__all__ = ["Client", "NodeUnavailable", "load_key", "sign_record"]

_BY_STATUS: dict[int, type[LedgerError]] = {
    400: InvalidInput,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: InvalidInput,
    422: RuleViolation,
    503: OrderingError,
}


class NodeUnavailable(OrderingError):
    """The node could not be reached or kept refusing after the retries."""


def load_key(path: str | Path, passphrase: bytes | None = None) -> SigningKey:
    return SigningKey.from_pem(Path(path).read_bytes(), passphrase)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign_record(
    chain: str,
    type_: str,
    payload: dict[str, Any],
    keys: Sequence[SigningKey],
    *,
    extra_signers: Sequence[str] = (),
    created: str | None = None,
    nonce: str | None = None,
) -> tuple[bytes, Transaction | None]:
    """Build the body for ``keys`` (+ ``extra_signers`` who sign elsewhere) and sign it.

    Returns ``(body, tx)``; ``tx`` is None while other parties still have to sign
    (a sale: export ``body``, let the buyer sign it, combine with :meth:`Client.combine`).
    """
    signers = [k.public_hex for k in keys] + list(extra_signers)
    body = build_body(
        chain=chain,
        type=type_,
        payload=payload,
        signers=signers,
        created=created or _now(),
        nonce=nonce,
    )
    if extra_signers:
        return body, None
    return body, sign(body, list(keys))


def _error(response: httpx.Response) -> LedgerError:
    try:
        problem = response.json()
        code = str(problem.get("code", "http_error"))
        detail = str(problem.get("detail", response.reason_phrase))
        context = problem.get("context", {}) or {}
    except (ValueError, AttributeError):
        code, detail, context = "http_error", response.text[:200] or response.reason_phrase, {}
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = StorageError if response.status_code >= 500 else VerificationFailure
    if code == "stale_head":
        cls = Conflict
    return cls(code, detail, status=response.status_code, **context)


class Client:
    """A connection to one node, optionally with a member key for writing."""

    def __init__(
        self,
        base_url: str,
        key: SigningKey | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.key = key
        self.retries = retries
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )
        self._chain: str | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport ---------------------------------------------------------------------

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise NodeUnavailable(
                        "node_unreachable", f"The node cannot be reached: {exc}."
                    ) from exc
                self._sleep(min(0.2 * 2**attempt, 5.0))
                attempt += 1
                continue
            if response.status_code == 503 and attempt < self.retries:
                retry = response.headers.get("retry-after", "1")
                self._sleep(float(retry) if retry.isdigit() else 1.0)
                attempt += 1
                continue
            return response

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._request(method, url, **kwargs)
        if response.status_code >= 400:
            raise _error(response)
        return response.json()

    # -- reading -------------------------------------------------------------------------

    @property
    def chain(self) -> str:
        if self._chain is None:
            self._chain = str(self._json("GET", "/v1/checkpoint")["checkpoint"]["chain"])
        return self._chain

    def health(self) -> dict[str, Any]:
        response = self._request("GET", "/healthz")
        return dict(response.json())

    def vehicle(self, vin: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/vehicles/{vin}"))

    def head(self, vin: str) -> str | None:
        """The id of the VIN's latest record (None for a VIN with no records)."""
        try:
            return self.vehicle(vin).get("head")
        except NotFound:
            return None

    def vehicles(self, *, after: str = "", limit: int = 50) -> dict[str, Any]:
        """One page of the VINs with records on this chain, in VIN order, after ``after``.

        ``{"vehicles": [{"vin": ..., "records": ..., ...}], "next": VIN or None}``;
        pass ``next`` as ``after`` for the following page (at most 500 a page).
        """
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        return dict(self._json("GET", "/v1/vehicles", params=params))

    def history(self, vin: str, *, page: int = 200) -> Iterator[dict[str, Any]]:
        after = -1
        while True:
            data = self._json(
                "GET", f"/v1/vehicles/{vin}/history", params={"after": after, "limit": page}
            )
            yield from data["records"]
            if data.get("next") is None:
                return
            after = int(data["next"])

    def report(self, vin: str, *, since: int | None = None) -> dict[str, Any]:
        """The VIN's verifiable report; with ``since``, plus a consistency proof from that size."""
        params = {} if since is None else {"since": since}
        return dict(self._json("GET", f"/v1/vehicles/{vin}/report", params=params))

    def transaction(self, tx_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/transactions/{tx_id}"))

    def listings(self, **filters: Any) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/listings", params=filters))

    def events(
        self, *, from_height: int | None = None, last_event_id: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Follow committed records (server-sent events); resumes after ``last_event_id``."""
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        params = {} if from_height is None else {"from_height": from_height}
        with self._http.stream(
            "GET",
            "/v1/events",
            params=params,
            headers=headers,
            timeout=httpx.Timeout(30.0, read=None),
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            data: list[str] = []
            for line in response.iter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    yield json.loads("\n".join(data))
                    data = []

    # -- writing -------------------------------------------------------------------------

    def submit(self, tx: Transaction, *, wait: bool = True) -> dict[str, Any]:
        """Submit one signed transaction; with ``wait``, return its commit receipt."""
        params = {"wait": "true"} if wait else {}
        return dict(self._json("POST", "/v1/transactions", json=tx.to_wire(), params=params))

    def submit_many(self, txs: Sequence[Transaction], *, wait: bool = True) -> list[dict[str, Any]]:
        """Submit up to 1,000 transactions in one request; one result per transaction."""
        params = {"wait": "true"} if wait else {}
        data = self._json(
            "POST", "/v1/transactions", json=[t.to_wire() for t in txs], params=params
        )
        return list(data["results"])

    def sign(
        self, type_: str, payload: dict[str, Any], *, co_signers: Sequence[SigningKey] = ()
    ) -> Transaction:
        if self.key is None:
            raise InvalidInput("no_key", "This client has no member key to sign with.")
        _, tx = sign_record(self.chain, type_, payload, [self.key, *co_signers])
        assert tx is not None
        return tx

    def record(
        self,
        type_: str,
        payload: dict[str, Any],
        *,
        co_signers: Sequence[SigningKey] = (),
        attempts: int = 5,
    ) -> dict[str, Any]:
        """Sign and submit a record about ``payload['vin']``, linking it to the VIN's head.

        Retries when another record for the same VIN was committed in between
        (``stale_head``). Raises the node's error otherwise.
        """
        for attempt in range(attempts):
            if "vin" in payload:
                payload = {**payload, "prev": self.head(payload["vin"])}
            tx = self.sign(type_, payload, co_signers=co_signers)
            try:
                return self.submit(tx)
            except Conflict as exc:
                if exc.code != "stale_head" or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def combine(body: bytes, signatures: Sequence[bytes]) -> Transaction:
        """A transaction from a body and the signatures its parties made separately."""
        return Transaction.from_body(body, signatures)
