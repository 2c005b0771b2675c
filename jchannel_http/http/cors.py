"""Cross-origin rules: which page origins may call the server, and the headers that say so."""

from __future__ import annotations

from aiohttp import web
from yarl import URL

from ..kernel.endpoint import Endpoint
from ..protocol import wire
from .context import ENDPOINT
from .replies import HttpError

ALLOWED_HEADERS = ', '.join(wire.REQUEST_HEADERS)


def origin_allowed(endpoint: Endpoint, origin: str) -> bool:
    """Any origin when allow_origins is None; else those listed and the server's own."""
    allowed = endpoint.options.allow_origins
    return allowed is None or origin in allowed or origin == str(URL(endpoint.url()).origin())


def check_origin(request: web.Request) -> None:
    """Refuse (403) a request from an origin that allow_origins does not list."""
    origin = request.headers.get('Origin')
    if origin and not origin_allowed(request.app[ENDPOINT], origin):
        raise HttpError(403, 'forbidden_origin',
                        f'origin {origin} is not in allow_origins; add it there to let its pages '
                        'call this server')


def add_cors(request: web.Request, response: web.StreamResponse) -> None:
    """Let the request's origin read ``response`` (call it before the response starts)."""
    origin = request.headers.get('Origin')
    if origin and origin_allowed(request.app[ENDPOINT], origin) and not response.prepared:
        response.headers['Access-Control-Allow-Origin'] = origin
        response.headers['Vary'] = 'Origin'
        # a cache on the way adds Age: the page tells its answers from the server's by it
        response.headers.setdefault('Access-Control-Expose-Headers', 'Age')


def preflight(request: web.Request) -> web.Response:
    """Answer a CORS preflight for an allowed origin."""
    check_origin(request)
    response = web.Response(status=204)
    response.headers.update({
        'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
        'Access-Control-Allow-Headers': ALLOWED_HEADERS,
        'Access-Control-Max-Age': '7200',
    })
    if request.headers.get('Access-Control-Request-Private-Network') == 'true':
        response.headers['Access-Control-Allow-Private-Network'] = 'true'
    return response
