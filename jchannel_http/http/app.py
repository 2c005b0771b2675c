"""The aiohttp application: routes, and the one middleware that guards every request.

The guard answers CORS preflights, checks origins and the token, bounds the requests in flight
and the time to read a body, and turns every error into one JSON answer (``error_for``). The
handlers live one job per module (events, messages, streams, direct, static, probe); each reads
its request and calls the kernel endpoint; none knows the server that listens.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..errors import ProtocolError, ResyncError, StateError
from ..kernel.endpoint import Endpoint
from ..protocol.clients import ClientConflict
from .connections import BodyTimeout, ConnectionGuard, within_body_deadline
from .context import ACCESS, ENDPOINT, IN_FLIGHT, PARTS, Access, InFlight
from .cors import add_cors, check_origin, preflight
from .direct import direct_call, status
from .events import events, poll
from .messages import messages, messages_by_get, release
from .openapi import PUBLIC_PATHS
from .prefix import UnderPrefix, path_of, strip_prefix
from .probe import websocket_probe
from .query_form import PartAssembly
from .replies import NO_STORE, HttpError, json_response
from .static import client_js, favicon, openapi_json, page
from .streams import stream_routes

__all__ = ['IN_FLIGHT', 'PROTOCOL_LOG', 'HttpError', 'InFlight', 'error_for', 'make_app']

log = logging.getLogger('jchannel_http')
PUBLIC = PUBLIC_PATHS  # static content, no data: served without the token

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ProtocolLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's log of requests it could not handle, as the logger ``jchannel_http.http``.

    A request that is not HTTP at all (aiohttp answers it 400 itself) is logged at DEBUG: anyone
    who reaches the port can send such bytes, and they must not fill the kernel's output.
    """

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else None
        level = logging.DEBUG if isinstance(error, HttpProcessingError) else logging.ERROR
        self.log(level, msg, *args, exc_info=exc_info, **kwargs)


PROTOCOL_LOG = ProtocolLog(logging.getLogger('jchannel_http.http'))

_STATUS: list[tuple[type[Exception], int, str]] = [
    (ClientConflict, 409, 'client_conflict'),
    (ResyncError, 410, 'resync'),
    (ProtocolError, 400, 'bad_request'),
    (StateError, 503, 'unavailable'),
]
"""The library's errors and their answers, most specific first."""


def error_for(exc: Exception) -> HttpError:
    """The one mapping of an error to its HTTP answer."""
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, BodyTimeout):
        return HttpError(408, 'request_timeout', str(exc), headers={'Connection': 'close'})
    for kind, status_code, code in _STATUS:
        if isinstance(exc, kind):
            return HttpError(status_code, code, str(exc))
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return HttpError(413, 'too_large', 'the request body is larger than max_body allows')
    if isinstance(exc, web.HTTPNotFound):
        return HttpError(404, 'not_found', 'no such endpoint; see /openapi.json')
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return HttpError(405, 'method_not_allowed', f'{exc.method} is not allowed here')
    if isinstance(exc, web.HTTPException):
        return HttpError(exc.status, 'http_error', exc.reason)
    log.error('unexpected error in the kernel server', exc_info=exc)
    return HttpError(500, 'internal_error', f'unexpected {type(exc).__name__}; see the kernel log')


def _token_of(request: web.Request) -> str | None:
    header = request.headers.get('Authorization', '')
    if header[:7].lower() == 'bearer ':
        return header[7:].strip()
    return request.query.get('token')


def _authorized(request: web.Request) -> bool:
    """Whether the request carries the token (compared in constant time)."""
    given = _token_of(request)
    expected = request.app[ACCESS].token
    return given is not None and secrets.compare_digest(
        given.encode('utf-8', 'surrogateescape'), expected.encode()
    )


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == 'OPTIONS':
        return preflight(request)
    if _route_path(request) in PUBLIC:
        return await handler(request)
    check_origin(request)
    if not _authorized(request):
        raise HttpError(
            401, 'unauthorized', 'a valid token is needed: Authorization: Bearer <token> or ?token='
        )
    request.app[ACCESS].connections.authenticate(request.protocol)
    with request.app[IN_FLIGHT].slot():
        return await within_body_deadline(
            request, handler, request.app[ENDPOINT].options.body_timeout
        )


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS, origins, the token, the in-flight limit, the body deadline and JSON errors for
    every request; the connection guard learns when the request starts and ends."""
    connections = request.app[ACCESS].connections
    connections.begin(request.protocol)
    try:
        origin_refused = False
        try:
            response = await _guarded(request, handler)
        except Exception as exc:  # noqa: BLE001 (every failure becomes a JSON error answer)
            error = error_for(exc)
            origin_refused = error.body['error'] == 'forbidden_origin'
            response = json_response(error.body, error.status, {**NO_STORE, **error.headers})
        add_cors(request, response, origin_refused)
        return response
    finally:
        connections.end(request.protocol)


def make_app(endpoint: Endpoint, token: str, connections: ConnectionGuard) -> web.Application:
    """The aiohttp application serving ``endpoint`` to requests that carry ``token``."""
    options = endpoint.options
    app = web.Application(middlewares=[guard], client_max_size=options.max_body)
    app[ENDPOINT] = endpoint
    app[ACCESS] = Access(token, connections)
    app[IN_FLIGHT] = InFlight(options.max_requests)
    app[PARTS] = PartAssembly(options.max_body)
    app.router.add_get('/events', events, allow_head=False)  # an endless answer
    app.router.add_post('/events', events)
    app.router.add_get('/poll', poll, allow_head=False)
    app.router.add_post('/messages', messages)
    app.router.add_get('/messages', messages_by_get, allow_head=False)
    app.router.add_post('/release', release)
    app.router.add_get('/release', release, allow_head=False)
    app.router.add_post('/channels/{channel}/call/{method}', direct_call)
    app.router.add_get('/status', status)
    app.router.add_get('/client.js', client_js)
    app.router.add_get('/openapi.json', openapi_json)
    app.router.add_get('/page', page)
    app.router.add_get('/favicon.ico', favicon)
    app.router.add_get('/probe/websocket', websocket_probe)
    app.add_routes(stream_routes(endpoint))
    app.router.register_resource(UnderPrefix(app.router, lambda: path_of(endpoint.url())))
    return app


def _route_path(request: web.Request) -> str:
    """The request's path without the server URL's path prefix, if it carries it."""
    return strip_prefix(request.path, path_of(request.app[ENDPOINT].url()))
