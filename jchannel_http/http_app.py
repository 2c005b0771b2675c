"""The aiohttp adapter: translates HTTP requests into Server calls and back.

Each handler parses and validates its request, calls the server, and writes the answer;
the protocol itself lives in ``session.py``, ``link.py`` and ``rpc.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import secrets
import time
from typing import Any, Awaitable, Callable, Iterator

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from . import openapi, transports
from .bundle import client_script
from .clients import ClientConflict, check_client_id
from .connections import BodyTimeout, within_body_deadline
from .errors import ProtocolError, ResyncError, StateError
from .frames import Call, Echo, Error, Pipe, Result, decode_item
from .values import dumps, encode_checked, loads
from .page import page_html
from .probe import websocket_probe
from .query_form import PartAssembly, decode_base64url
from .rpc import MissingMethod, invoke
from .server import Server
from .stream_http import stream_routes

log = logging.getLogger('jchannel_http')
SERVER = web.AppKey('server', Server)
PUBLIC = {'/client.js', '/openapi.json', '/page', '/favicon.ico'}  # static content, no data
ALLOWED_HEADERS = ('Authorization, Content-Type, Last-Event-ID, ngrok-skip-browser-warning, '
                   'X-XSRFToken, Stream-Offset, Stream-End, Stream-Total')
FROM_PAGE = (Call, Echo, Pipe, Result, Error)
POST_FIELDS = {'client', 'session', 'ack', 'messages', 'carry'}
SEQUENCE_NUMBER = re.compile(r'[0-9]{1,16}')  # JavaScript counts exactly up to 2**53

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpError(Exception):
    """An error answered as JSON with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.body = {'error': code, 'message': message, **extra}


class InFlight:
    """Counts the authenticated requests being handled and refuses those beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the ``limit`` slots while the request is handled, or raise a 429."""
        if self.count >= self.limit:
            raise HttpError(429, 'too_many_requests',
                            f'{self.limit} requests are in flight already (the max_requests '
                            'option); retry later', headers={'Retry-After': '1'})
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1


IN_FLIGHT = web.AppKey('in_flight', InFlight)
PARTS = web.AppKey('parts', PartAssembly)
NO_STORE = {'Cache-Control': 'no-store, no-transform'}


class ProtocolLog(logging.LoggerAdapter):
    """aiohttp's log of requests it could not handle, as the logger ``jchannel_http.http``.

    A request that is not HTTP at all (aiohttp answers it 400 itself) is logged at DEBUG: anyone
    who reaches the port can send such bytes, and they must not fill the kernel's output.
    """

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else None
        level = logging.DEBUG if isinstance(error, HttpProcessingError) else logging.ERROR
        self.log(level, msg, *args, exc_info=exc_info, **kwargs)


PROTOCOL_LOG = ProtocolLog(logging.getLogger('jchannel_http.http'))


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    """A JSON response encoded by orjson."""
    return web.Response(body=dumps(data), status=status, content_type='application/json',
                        headers=headers)


def _error_for(exc: Exception) -> HttpError:
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, ClientConflict):
        return HttpError(409, 'client_conflict', str(exc))
    if isinstance(exc, BodyTimeout):
        return HttpError(408, 'request_timeout', str(exc), headers={'Connection': 'close'})
    if isinstance(exc, ResyncError):
        return HttpError(410, 'resync', str(exc))
    if isinstance(exc, ProtocolError):
        return HttpError(400, 'bad_request', str(exc))
    if isinstance(exc, StateError):
        return HttpError(503, 'unavailable', str(exc))
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


def _origin_allowed(server: Server, origin: str) -> bool:
    """Any origin when allow_origins is None; else those listed and the server's own."""
    allowed = server.options.allow_origins
    return allowed is None or origin in allowed or origin == str(URL(server.url).origin())


def _check_origin(request: web.Request) -> None:
    origin = request.headers.get('Origin')
    if origin and not _origin_allowed(request.app[SERVER], origin):
        raise HttpError(403, 'forbidden_origin',
                        f'origin {origin} is not in allow_origins; add it there to let its pages '
                        'call this server')


def _cors(request: web.Request, response: web.StreamResponse) -> None:
    origin = request.headers.get('Origin')
    if origin and _origin_allowed(request.app[SERVER], origin) and not response.prepared:
        response.headers['Access-Control-Allow-Origin'] = origin
        response.headers['Vary'] = 'Origin'
        # a cache on the way adds Age: the page tells its answers from the server's by it
        response.headers.setdefault('Access-Control-Expose-Headers', 'Age')


def _token_of(request: web.Request) -> str | None:
    header = request.headers.get('Authorization', '')
    if header[:7].lower() == 'bearer ':
        return header[7:].strip()
    return request.query.get('token')


def _authorized(request: web.Request) -> bool:
    """Whether the request carries the token (compared in constant time)."""
    given = _token_of(request)
    expected = request.app[SERVER].token
    return given is not None and secrets.compare_digest(
        given.encode('utf-8', 'surrogateescape'), expected.encode())


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == 'OPTIONS':
        return preflight(request)
    if _route_path(request) in PUBLIC:
        return await handler(request)
    _check_origin(request)
    if not _authorized(request):
        raise HttpError(401, 'unauthorized',
                        'a valid token is needed: Authorization: Bearer <token> or ?token=')
    server = request.app[SERVER]
    server.connections.authenticate(request.protocol)
    with request.app[IN_FLIGHT].slot():
        return await within_body_deadline(request, handler, server.options.body_timeout)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS, origins, the token, the in-flight limit, the body deadline and JSON errors for
    every request; the connection guard learns when the request starts and ends."""
    connections = request.app[SERVER].connections
    connections.begin(request.protocol)
    try:
        try:
            response = await _guarded(request, handler)
        except Exception as exc:
            error = _error_for(exc)
            response = json_response(error.body, error.status, {**NO_STORE, **error.headers})
        _cors(request, response)
        return response
    finally:
        connections.end(request.protocol)


def preflight(request: web.Request) -> web.Response:
    """Answer a CORS preflight for an allowed origin."""
    _check_origin(request)
    response = web.Response(status=204)
    response.headers.update({
        'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
        'Access-Control-Allow-Headers': ALLOWED_HEADERS,
        'Access-Control-Max-Age': '7200',
    })
    if request.headers.get('Access-Control-Request-Private-Network') == 'true':
        response.headers['Access-Control-Allow-Private-Network'] = 'true'
    return response


async def read_json(request: web.Request, empty: Any = None) -> Any:
    """The request body parsed as JSON (``empty`` for an empty body), or a 400."""
    body = await request.read()
    if not body and empty is not None:
        return empty
    try:
        return loads(body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, 'bad_request', f'the body is not valid JSON: {exc}') from exc


def _int_param(value: str | None, name: str) -> int:
    if value is None or value == '':
        return 0
    if not SEQUENCE_NUMBER.fullmatch(value):
        raise ProtocolError(f'{name} must be a non-negative integer of at most 16 digits')
    return int(value)


async def events(request: web.Request) -> web.StreamResponse:
    """GET or POST /events: the kernel -> page event stream (see transports.py)."""
    cursor = _int_param(request.query.get('cursor'), 'cursor')
    if request.headers.get('Last-Event-ID'):  # wins over the cursor, which must still be valid
        cursor = _int_param(request.headers['Last-Event-ID'], 'Last-Event-ID')
    return await transports.event_stream(request, request.app[SERVER], cursor,
                                         lambda response: _cors(request, response))


async def poll(request: web.Request) -> web.Response:
    """GET /poll: the kernel -> page frames by long-poll (see transports.py)."""
    cursor = _int_param(request.query.get('cursor'), 'cursor')
    return await transports.long_poll(request, request.app[SERVER], cursor)


def _parse_post(body: Any) -> tuple[str, str, int, list, bool]:
    if not isinstance(body, dict):
        raise ProtocolError('the body must be a JSON object')
    unknown = set(body) - POST_FIELDS
    if unknown:
        raise ProtocolError(f'unknown field(s) {sorted(unknown)}; expected {sorted(POST_FIELDS)}')
    client = check_client_id(body.get('client'))
    session = body.get('session')
    if not isinstance(session, str):
        raise ProtocolError("field 'session' must be the session id from the hello event")
    ack = body.get('ack', 0)
    if not isinstance(ack, int) or isinstance(ack, bool) or ack < 0:
        raise ProtocolError("field 'ack' must be a non-negative integer")
    messages = body.get('messages', [])
    if not isinstance(messages, list):
        raise ProtocolError("field 'messages' must be a JSON array")
    carry = body.get('carry', False)
    if not isinstance(carry, bool):
        raise ProtocolError("field 'carry' must be true or false")
    return client, session, ack, messages, carry


async def messages(request: web.Request) -> web.Response:
    """POST /messages: frames and acknowledgements from the page; with ``carry``, the answer
    also carries kernel frames after ``ack`` (see transports.carry)."""
    client, session, ack, raw, carry = _parse_post(await read_json(request))
    return await _take_batch(request, client, session, ack, raw, carry, 'post')


async def messages_by_get(request: web.Request) -> web.Response:
    """GET /messages: the same batch in the query, for paths that refuse POST (see
    query_form.py). The answer always carries frames, except that of a batch's non-final part,
    which is ``{"ack": ..., "have": <characters held>}``."""
    server = request.app[SERVER]
    query = request.query
    client = check_client_id(query.get('client'))
    session = query.get('session')
    if not session:
        raise ProtocolError("'session' must be the session id from the hello event")
    ack = _int_param(query.get('ack'), 'ack')
    if 'messages' in query:
        text: str | None = query['messages']
    else:
        server.admit(client)
        if session != server.link.session.id:
            raise ResyncError('the session is over (the kernel server was restarted or another '
                              'page took over); start a new one')
        assembly = request.app[PARTS]
        text = assembly.add((client, session), query)
        if text is None:
            server.link.acknowledge(ack)
            server.gate.touch(client, time.monotonic())
            server.gate.sent(client, 'get')
            return json_response({'ack': server.link.session.inbox.cursor,
                                  'have': assembly.have}, headers=NO_STORE)
    raw = loads_checked(decode_base64url(text, 'messages'))
    if not isinstance(raw, list):
        raise ProtocolError('messages must encode a JSON array of frames')
    return await _take_batch(request, client, session, ack, raw, True, 'get')


def loads_checked(body: bytes) -> Any:
    """``body`` parsed as JSON, or a 400."""
    try:
        return loads(body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, 'bad_request', f'the batch is not valid JSON: {exc}') from exc


async def _take_batch(request: web.Request, client: str, session: str, ack: int, raw: list,
                      carry: bool, method: str) -> web.Response:
    server = request.app[SERVER]
    limit = transports.answer_bytes(server, request.query.get('bytes'))
    # An item that is not a valid frame keeps its place in the sequence and fails only its own
    # call (rpc.py); only an item without a usable sequence number refuses the whole batch.
    frames = [decode_item(item, FROM_PAGE) for item in raw]
    server.admit(client)
    link = server.link
    if session != link.session.id:
        raise ResyncError('the session is over (the kernel server was restarted or another '
                          'page took over); start a new one')
    link.acknowledge(ack)
    rpc = server.rpc
    for frame in link.receive(frames):
        rpc.handle(frame)
    server.gate.touch(client, time.monotonic())
    server.gate.sent(client, method)
    answer = {'ack': link.session.inbox.cursor}
    if not carry:
        return json_response(answer)
    return transports.frames_response(answer, await transports.carry(server, link.session, ack,
                                                                     limit))


async def release(request: web.Request) -> web.Response:
    """POST (or GET) /release: the page is going away; another may take over at once."""
    client = check_client_id(request.query.get('client'))
    return json_response({'released': request.app[SERVER].gate.release(client)},
                         headers=NO_STORE)


async def direct_call(request: web.Request) -> web.Response:
    """POST /channels/{channel}/call/{method}: call a handler method without a page."""
    server = request.app[SERVER]
    channel = server.channel(request.match_info['channel'])
    if channel is None:
        raise HttpError(404, 'not_found', f"no channel {request.match_info['channel']!r}")
    args = await read_json(request, empty=[])
    if not isinstance(args, list):
        raise HttpError(400, 'bad_request', 'the body must be a JSON array of arguments')
    method = request.match_info['method']
    try:
        result = await invoke(channel.handler, method, args)
        return web.Response(body=encode_checked({'result': result}, {'result': result}),
                            content_type='application/json')
    except MissingMethod as exc:
        raise HttpError(404, 'not_found', str(exc)) from exc
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # KeyboardInterrupt and SystemExit end only this call
        if not isinstance(exc, TypeError):
            log.warning('handler method %r of channel %s raised %s (called over HTTP)', method,
                        channel.name or channel.key, type(exc).__name__, exc_info=exc)
        error = server.rpc.error_frame(0, exc)
        raise HttpError(422, 'handler_error', error.message, name=error.name) from exc


async def status(request: web.Request) -> web.Response:
    """GET /status."""
    return json_response(request.app[SERVER].status())


async def client_js(request: web.Request) -> web.Response:
    """GET /client.js: the browser client, one classic script."""
    return web.Response(body=client_script(), content_type='text/javascript', charset='utf-8',
                        headers={'Cache-Control': 'no-cache'})


async def openapi_json(request: web.Request) -> web.Response:
    """GET /openapi.json."""
    return json_response(openapi.describe(request.app[SERVER].url))


async def page(request: web.Request) -> web.Response:
    """GET /page: a page that becomes the client."""
    return web.Response(text=page_html(request.app[SERVER].client_options()),
                        content_type='text/html',
                        headers={'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer'})


async def favicon(request: web.Request) -> web.Response:
    """GET /favicon.ico: nothing, so browsers stop asking."""
    return web.Response(status=204)


def make_app(server: Server) -> web.Application:
    """The aiohttp application serving ``server``."""
    app = web.Application(middlewares=[guard], client_max_size=server.options.max_body)
    app[SERVER] = server
    app[IN_FLIGHT] = InFlight(server.options.max_requests)
    app[PARTS] = PartAssembly(server.options.max_body)
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
    app.add_routes(stream_routes(server, _cors))
    app.router.register_resource(UnderPrefix(app.router, lambda: url_prefix(server)))
    return app


def url_prefix(server: Server) -> str:
    """The path prefix of the server's URL now ('' for none): a tunnel's URL is known only
    once its launcher has started, after the application was built."""
    return _path_of(server.url)


@functools.lru_cache(maxsize=8)
def _path_of(url: str) -> str:
    return URL(url).path.rstrip('/')


class UnderPrefix(web.AbstractResource):
    """Every route again under the server URL's path prefix, for proxies that keep it. The
    prefix is read at each request: a tunnel's URL is known only once the server listens."""

    def __init__(self, router: web.UrlDispatcher, prefix: Callable[[], str]) -> None:
        super().__init__()
        self._router = router
        self._prefix = prefix

    @property
    def canonical(self) -> str:
        return '/'  # tried after every route, as the root of any path

    async def resolve(self, request: web.Request) -> tuple[Any, set[str]]:
        prefix = self._prefix()
        if not prefix or not request.path.startswith(prefix + '/'):
            return None, set()
        found = await self._router.resolve(request.clone(rel_url=request.path[len(prefix):]))
        if found.http_exception is not None:
            return None, set(getattr(found.http_exception, 'allowed_methods', ()))
        return found, set()

    def url_for(self, **kwargs: str) -> URL:
        raise NotImplementedError('the routes under the prefix have no URLs of their own')

    def add_prefix(self, prefix: str) -> None:
        raise NotImplementedError('the server is not mounted under another application')

    def get_info(self) -> dict[str, Any]:
        return {'prefix': self._prefix()}

    def raw_match(self, path: str) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[Any]:
        return iter(())


def _route_path(request: web.Request) -> str:
    """The request's path without the server URL's path prefix, if it carries it."""
    prefix = url_prefix(request.app[SERVER])
    if prefix and request.path.startswith(prefix + '/'):
        return request.path[len(prefix):]
    return request.path
