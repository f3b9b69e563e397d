"""The routes of the web pages (HTML, plus one small JSON lookup for the console).

Handlers are plain ``def`` (FastAPI runs them in its thread pool, as the API's).
A :class:`~carledger.errors.LedgerError` (a malformed VIN, an unknown block) becomes
an error page in the reader's language with the error's status and stable code,
never a traceback. None of these routes writes: the console signs in the browser
and posts to ``/v1/transactions`` like any other client.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from carledger.errors import LedgerError, NotFound
from carledger.node import views
from carledger.node.service import Node
from carledger.node.vehicle_views import report_view
from carledger.vehicle import vin as vins
from carledger.vehicle.clock import local_date
from carledger.vehicle.indexes import plate_key
from carledger.web import directory, operator
from carledger.web.i18n import Translator
from carledger.web.listings import listing_rows, market_makes
from carledger.web.render import Renderer
from carledger.web.vehicle_page import qr_svg, vehicle_page

__all__ = ["router"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_VINISH = re.compile(r"[0-9A-Za-z]{17}")


def router(node: Node) -> APIRouter:
    """The web pages of ``node`` as a router (hidden from the OpenAPI document)."""
    ledger = node.ledger
    pages = Renderer()
    r = APIRouter(include_in_schema=False)

    def guarded(request: Request, build: Callable[[Translator], Response]) -> Response:
        t, _ = pages.translator(request)
        try:
            return build(t)
        except LedgerError as exc:
            return pages.page(
                request,
                "error.html",
                status=exc.status,
                t=t,
                code=exc.code,
                message=t.maybe(f"err.{exc.code}", exc.message),
                detail=exc.message,
                **common(),
            )

    def common() -> dict[str, Any]:
        return {
            "head_height": ledger.height,
            "chain": ledger.chain_id,
            "head_time": ledger.head.time,
        }

    # -- citizens ------------------------------------------------------------------------

    @r.get("/")
    def home(request: Request) -> Response:
        def build(t: Translator) -> Response:
            return pages.page(
                request,
                "home.html",
                t=t,
                markets=directory.markets(ledger),
                query="",
                error=None,
                **common(),
            )

        return guarded(request, build)

    @r.get("/search")
    def search(request: Request, q: str = "") -> Response:
        text = q.strip()
        target = _search_target(text, ledger)
        if target is not None:
            return RedirectResponse(target, status_code=303)

        def build(t: Translator) -> Response:
            return pages.page(
                request,
                "home.html",
                status=404 if text else 200,
                t=t,
                markets=directory.markets(ledger),
                query=text,
                error=t("home.not_found", q=text) if text else None,
                **common(),
            )

        return guarded(request, build)

    @r.get("/vehicles/{vin}")
    def vehicle(
        request: Request,
        vin: str,
        h: Annotated[int | None, Query()] = None,
        c: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Response:
        def build(t: Translator) -> Response:
            canonical = vins.normalise(vin)
            if canonical != vin:
                query = f"?{request.url.query}" if request.url.query else ""
                return RedirectResponse(f"/vehicles/{canonical}{query}", status_code=301)
            report = report_view(ledger, canonical)
            if not report["records"]:
                raise NotFound(
                    "unknown_vehicle", f"No record about {canonical} is on this chain.", vin=vin
                )
            model = vehicle_page(ledger, report, t, printed=(h, c))
            here = f"{request.base_url}vehicles/{canonical}"
            qr_url = f"{here}?h={model['checkpoint']['height']}&c={model['content_hash']}"
            return pages.page(
                request,
                "vehicle.html",
                t=t,
                v=model,
                qr=qr_svg(qr_url, t("vehicle.qr_title")),
                qr_url=qr_url,
                trust=directory.trust(ledger),
                **common(),
            )

        return guarded(request, build)

    @r.get("/markets/{market_id}/listings")
    def listings(
        request: Request,
        market_id: str,
        make: str = "",
        min_man: Annotated[str, Query(max_length=10)] = "",
        max_man: Annotated[str, Query(max_length=10)] = "",
        after: str = "",
    ) -> Response:
        # An emptied filter field arrives as "": it means "no bound", never an error.
        low = int(min_man) if min_man.isdigit() else None
        high = int(max_man) if max_man.isdigit() else None

        def build(t: Translator) -> Response:
            market = directory.market(ledger, market_id)
            if market is None:
                raise NotFound("unknown_market", f"There is no market {market_id!r}.")
            rows, nxt = listing_rows(
                ledger, market, t, make=make, min_man=low, max_man=high, after=after
            )
            return pages.page(
                request,
                "listings.html",
                t=t,
                market=market,
                rows=rows,
                next=nxt,
                makes=market_makes(ledger, market_id),
                filters={"make": make, "min_man": low, "max_man": high},
                today=local_date(ledger.head.time),
                trust=directory.trust(ledger),
                **common(),
            )

        return guarded(request, build)

    # -- operators -----------------------------------------------------------------------

    @r.get("/explorer")
    def explorer(request: Request, before: Annotated[int | None, Query(ge=1)] = None) -> Response:
        def build(t: Translator) -> Response:
            return pages.page(
                request, "explorer.html", t=t, **operator.block_list(ledger, before), **common()
            )

        return guarded(request, build)

    @r.get("/explorer/blocks/{height}")
    def block(request: Request, height: int) -> Response:
        def build(t: Translator) -> Response:
            view = views.block_view(ledger, height)
            return pages.page(
                request,
                "block.html",
                t=t,
                block=view,
                signers=operator.valid_signers(ledger, view["checkpoint"]),
                **common(),
            )

        return guarded(request, build)

    @r.get("/explorer/tx/{tx_id}")
    def transaction(request: Request, tx_id: str) -> Response:
        def build(t: Translator) -> Response:
            view = views.transaction_view(ledger, tx_id)
            return pages.page(request, "tx.html", t=t, tx=view, **common())

        return guarded(request, build)

    @r.get("/status")
    def status(request: Request) -> Response:
        def build(t: Translator) -> Response:
            return pages.page(request, "status.html", t=t, s=operator.status_page(node), **common())

        return guarded(request, build)

    @r.get("/members")
    def members(request: Request) -> Response:
        def build(t: Translator) -> Response:
            return pages.page(
                request, "members.html", t=t, m=operator.members_page(ledger), **common()
            )

        return guarded(request, build)

    # -- dealers and buyers -----------------------------------------------------------

    @r.get("/console")
    def console(request: Request) -> Response:
        def build(t: Translator) -> Response:
            return pages.page(
                request,
                "console.html",
                t=t,
                markets=directory.markets(ledger),
                today=local_date(ledger.head.time),
                **common(),
            )

        return guarded(request, build)

    @r.get("/console/sign")
    def console_sign(request: Request) -> Response:
        def build(t: Translator) -> Response:
            return pages.page(
                request, "sign.html", t=t, markets=directory.markets(ledger), **common()
            )

        return guarded(request, build)

    @r.get("/console/member/{key}")
    def console_member(key: str) -> JSONResponse:
        """Who a public key is (the console shows it after sign-in): 404 when unknown."""
        entry = directory.member(ledger, key) if _HEX64.fullmatch(key) else None
        if entry is None:
            return JSONResponse({"key": key, "known": False}, status_code=404)
        org = directory.org(ledger, entry["org"])
        return JSONResponse(
            {**entry, "known": True, "org_name": org["name"] if org else entry["org"]}
        )

    return r


def _search_target(text: str, ledger: Any) -> str | None:
    """Where a search box entry leads: a VIN, a plate, a block height or a transaction."""
    if not text:
        return None
    if _VINISH.fullmatch(text):
        try:
            return f"/vehicles/{vins.normalise(text)}"
        except LedgerError:
            return None
    if text.isdigit() and int(text) <= ledger.height:
        return f"/explorer/blocks/{int(text)}"
    if _HEX64.fullmatch(text.lower()):
        return f"/explorer/tx/{text.lower()}"
    plate = text.replace(" ", "")
    entry = ledger.state(plate_key(plate))
    if entry is not None:
        return f"/vehicles/{entry['vin']}"
    return None
