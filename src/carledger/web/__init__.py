"""The node's web pages: server-rendered HTML in Korean and English, served with the API.

``install(app, node)`` mounts them on the API's FastAPI app (``carledger up`` serves
both on one port):

============================  =====================================================
``/``                         search by VIN, plate, block height or transaction id;
                              the markets
``/vehicles/{vin}``           the buyer's page: verified mark, summary, odometer
                              chart, timeline, inspections; re-verified in the
                              browser (``?h=&c=`` from a printed report's QR code)
``/markets/{id}/listings``    cars on sale with their verified mark, filters
``/console``                  dealer console: a member key stays in the browser and
                              signs client-side; ``/console/sign`` is the buyer's side
``/explorer``                 blocks, transactions and their validity codes
``/status``                   this node and the validators' checkpoint signatures
``/members``                  organisations, members, validators
``/static/...``               the pages' CSS and JavaScript (no external asset)
============================  =====================================================

Modules: :mod:`.i18n` (catalogues), :mod:`.render` (templates, CSP), the page
models :mod:`.vehicle_page`, :mod:`.listings`, :mod:`.operator`, the drawings
:mod:`.chart` and :mod:`.panels`, and the routes in :mod:`.routes`. The browser
verifier is ``static/js/verify.js``; ``docs/adr/0008-web.md`` records the decisions.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from carledger.node.service import Node
from carledger.web.routes import router

__all__ = ["install"]


def install(app: FastAPI, node: Node) -> None:
    """Add the web pages and their static files to ``app`` (the node's API app)."""
    app.include_router(router(node))
    app.mount("/static", StaticFiles(packages=[("carledger.web", "static")]), name="static")
