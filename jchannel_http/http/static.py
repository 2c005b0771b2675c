"""What the server serves without a session: the client script, the page, the description."""

from __future__ import annotations

from aiohttp import web

from . import openapi
from .bundle import client_script
from .context import ENDPOINT
from .page import page_html
from .replies import json_response


async def client_js(request: web.Request) -> web.Response:
    """GET /client.js: the browser client, one classic script."""
    return web.Response(
        body=client_script(),
        content_type='text/javascript',
        charset='utf-8',
        headers={'Cache-Control': 'no-cache'},
    )


async def openapi_json(request: web.Request) -> web.Response:
    """GET /openapi.json."""
    return json_response(openapi.describe(request.app[ENDPOINT].url()))


async def page(request: web.Request) -> web.Response:
    """GET /page: a page that becomes the client."""
    return web.Response(
        text=page_html(request.app[ENDPOINT].client_options()),
        content_type='text/html',
        headers={'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer'},
    )


async def favicon(request: web.Request) -> web.Response:
    """GET /favicon.ico: nothing, so browsers stop asking."""
    return web.Response(status=204)
