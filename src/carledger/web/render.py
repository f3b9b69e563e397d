"""Rendering: the Jinja2 environment, the language of a request, and the page response.

Templates are autoescaped and strict (an undefined variable is an error, never an
empty string). Every page gets ``t`` (the :class:`~carledger.web.i18n.Translator`),
``lang``, ``static(path)`` (a cache-busted URL of a bundled asset) and
``switch_url(lang)``. Responses carry a Content-Security-Policy that allows only the
node's own scripts, styles and requests: no inline script runs, so data embedded in
a page (``<script type="application/json">``) can never execute.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from carledger.web.i18n import COOKIE, Translator, choose

__all__ = ["CSP", "Renderer", "json_script"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def json_script(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` element: ``<``, ``>``, ``&`` escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # noqa: S704 (escaped above; inside a non-executed JSON script)


@lru_cache(maxsize=256)
def _asset_version(path: str) -> str:
    data = resources.files("carledger.web").joinpath("static", *path.split("/")).read_bytes()
    return hashlib.sha256(data).hexdigest()[:12]


def static_url(path: str) -> str:
    """``/static/<path>?v=<content hash>``: browsers cache it until the file changes."""
    return f"/static/{path}?v={_asset_version(path)}"


class Renderer:
    """Renders the package's templates for a request, in the request's language."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("carledger.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["static"] = static_url
        self.env.filters["json_script"] = json_script

    def translator(self, request: Request) -> tuple[Translator, bool]:
        lang, remember = choose(request.query_params.get("lang"), request.cookies.get(COOKIE))
        return Translator(lang), remember

    def page(
        self,
        request: Request,
        template: str,
        *,
        status: int = 200,
        t: Translator | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """The page ``template`` rendered with ``context``; sets the language cookie."""
        tr, remember = self.translator(request)
        if t is not None:
            tr = t

        def switch_url(lang: str) -> str:
            params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
            return f"{request.url.path}?{urlencode([*params, ('lang', lang)])}"

        html = self.env.get_template(template).render(
            t=tr,
            lang=tr.lang,
            switch_url=switch_url,
            path=request.url.path,
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["Content-Language"] = tr.lang
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if remember:
            response.set_cookie(COOKIE, tr.lang, max_age=365 * 86_400, samesite="lax")
        return response
