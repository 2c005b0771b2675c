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
    """Refuse (403) a request from an origin that allow_origins does not list, saying the exact
    ``allow_origins`` that would let it in."""
    origin = request.headers.get('Origin')
    endpoint = request.app[ENDPOINT]
    if origin and not origin_allowed(endpoint, origin):
        listed = [*(endpoint.options.allow_origins or ()), origin]
        raise HttpError(
            403,
            'forbidden_origin',
            f'origin {origin} is not in allow_origins; to let its pages call this '
            f'server, start it with allow_origins={listed!r}',
        )


def add_cors(
    request: web.Request, response: web.StreamResponse, origin_refused: bool = False
) -> None:
    """Let the request's origin read ``response`` (call it before the response starts): an
    allowed origin any answer; a refused one only its refusal (``origin_refused``: the 403
    forbidden_origin, which holds no data), so that its page can say which origin to allow."""
    origin = request.headers.get('Origin')
    if not origin or response.prepared:
        return
    if origin_refused or origin_allowed(request.app[ENDPOINT], origin):
        response.headers['Access-Control-Allow-Origin'] = origin
        response.headers['Vary'] = 'Origin'
        # a cache on the way adds Age: the page tells its answers from the server's by it
        response.headers.setdefault('Access-Control-Expose-Headers', 'Age')


def preflight(request: web.Request) -> web.Response:
    """Answer a CORS preflight. A refused origin's preflight passes too: its request then gets
    the 403 forbidden_origin (before the token is looked at, before any handler runs), which its
    page can read, rather than a network error it cannot tell from a server that is gone."""
    response = web.Response(status=204)
    response.headers.update(
        {
            'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
            'Access-Control-Allow-Headers': ALLOWED_HEADERS,
            'Access-Control-Max-Age': '7200',
        }
    )
    if request.headers.get('Access-Control-Request-Private-Network') == 'true':
        response.headers['Access-Control-Allow-Private-Network'] = 'true'
    origin = request.headers.get('Origin')
    if origin:
        response.headers['Access-Control-Allow-Origin'] = origin
        response.headers['Vary'] = 'Origin'
    return response
