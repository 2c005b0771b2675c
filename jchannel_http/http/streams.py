"""The aiohttp handlers of byte streams (see "Byte streams" in docs/protocol.md).

Page -> kernel: ``POST /streams/up/{id}`` carries one chunk (``Stream-Offset`` header, at most
``chunk_size`` bytes); ``POST /streams/up/{id}/error`` says the page's producer raised.
Kernel -> page: ``GET /streams/down/{id}?offset=N`` streams the bytes from ``N``;
``POST /streams/down/{id}/ack`` and ``/cancel`` acknowledge bytes and stop the producer.
Every request names the session (``?session=``): a stream lives as long as its session.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ..errors import FrontendError, ProtocolError, ResyncError
from ..kernel.endpoint import Endpoint
from ..kernel.transfers import Download, Upload
from ..protocol import wire
from .cors import add_cors
from .query_form import decode_base64url
from .replies import NO_STORE, HttpError, json_response

STREAM_ID = wire.POSITIVE_ID
OFFSET = wire.SEQUENCE_NUMBER
EXPOSED = ', '.join(wire.EXPOSED_HEADERS)
OFFSET_HEADER = f'the {wire.STREAM_OFFSET} header'
TOTAL_HEADER = f'the {wire.STREAM_TOTAL} header'


def _number(value: str | None, name: str, default: int | None = None) -> int:
    if value is None or value == '':
        if default is None:
            raise ProtocolError(f'{name} is required: the offset of the first byte it concerns')
        return default
    if not OFFSET.fullmatch(value):
        raise ProtocolError(f'{name} must be a non-negative integer of at most 16 digits')
    return int(value)


def _flag(value: str | None) -> bool:
    if value is None:
        return False
    if value != '1':
        raise ProtocolError("Stream-End must be '1' (or absent)")
    return True


class StreamHandlers:
    """The stream endpoints of one kernel endpoint."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the application."""
        return [
            web.post('/streams/up/{id}', self.chunk),
            web.post('/streams/up/{id}/error', self.upload_error),
            web.get('/streams/down/{id}', self.download),
            web.post('/streams/down/{id}/ack', self.ack),
            web.post('/streams/down/{id}/cancel', self.cancel),
            # the GET form, for paths that refuse POST (see query_form.py)
            web.get('/streams/up/{id}', self.chunk, allow_head=False),
            web.get('/streams/up/{id}/error', self.upload_error, allow_head=False),
            web.get('/streams/down/{id}/ack', self.ack, allow_head=False),
            web.get('/streams/down/{id}/cancel', self.cancel, allow_head=False),
        ]

    def _key(self, request: web.Request) -> int:
        """The stream id of the request."""
        key = request.match_info['id']
        if not STREAM_ID.fullmatch(key):
            raise ProtocolError('a stream id is a positive integer')
        return int(key)

    def _session(self, request: web.Request) -> None:
        """Check the session, once the rest of the request was validated."""
        session = request.query.get('session')
        if not session:
            raise ProtocolError(f'?session= is required: {wire.SESSION_REQUIRED}')
        if session != self.endpoint.session_id:
            raise ResyncError(wire.STREAM_SESSION_OVER)

    async def chunk(self, request: web.Request) -> web.Response:
        """POST /streams/up/{id}: one chunk of a page -> kernel stream."""
        key = self._key(request)
        options = self.endpoint.options
        offset = _number(request.headers.get(wire.STREAM_OFFSET), OFFSET_HEADER)
        last = _flag(request.headers.get(wire.STREAM_END))
        total = request.headers.get(wire.STREAM_TOTAL)
        if total is not None:
            _number(total, TOTAL_HEADER)
        self._session(request)
        limit = options.chunk_size
        if request.method == 'GET':
            decoded = decode_base64url(request.query.get('data', ''), 'data')
            data = decoded if len(decoded) <= limit else None
        else:
            data = await _read_body(request, limit)
        if data is None:
            raise HttpError(
                413,
                'too_large',
                f'a chunk may have at most {limit} bytes (chunk_size); send smaller chunks',
                chunk_size=limit,
            )
        stream = self.endpoint.streams.upload(key)
        if total is not None and stream.total is None:
            stream.total = _number(total, TOTAL_HEADER)
        stored = await stream.put(offset, data, last, options.heartbeat)
        return _answer(stream, stored, options.chunk_size, options.chunks_in_flight)

    async def upload_error(self, request: web.Request) -> web.Response:
        """POST /streams/up/{id}/error: the page's producer raised; the consumer gets it."""
        key = self._key(request)
        if request.method == 'GET':
            body = {
                name: request.query[name] for name in ('name', 'message') if name in request.query
            }
        else:
            try:
                body = orjson.loads(await request.read())
            except orjson.JSONDecodeError as exc:
                raise ProtocolError(f'the body is not valid JSON: {exc}') from exc
        if (
            not isinstance(body, dict)
            or not isinstance(body.get('name'), str)
            or not isinstance(body.get('message'), str)
        ):
            raise ProtocolError('the body must be {"name": "<error class>", "message": "..."}')
        self._session(request)
        stream = self.endpoint.streams.upload(key)
        stream.fail(FrontendError(body['name'], body['message']))
        return _json({'state': stream.state})

    async def download(self, request: web.Request) -> web.StreamResponse:
        """GET /streams/down/{id}?offset=N: the bytes of a kernel -> page stream from N."""
        key = self._key(request)
        offset = _number(request.query.get('offset'), 'offset', 0)
        self._session(request)
        stream = self._download(key)
        if stream is None:
            raise HttpError(
                404,
                'not_found',
                f'no stream {key} from the kernel in this session '
                '(finished, cancelled or never started)',
            )
        if offset < stream.backlog.acked:
            raise ProtocolError(
                f'offset {offset} was acknowledged already (up to '
                f'{stream.backlog.acked}); resume from the offset you hold'
            )
        stream.ack(offset)
        if stream.error is not None and offset == stream.backlog.produced:
            error = self.endpoint.rpc.error_frame(0, stream.error)
            raise HttpError(422, 'stream_error', error.message, name=error.name)
        response = web.StreamResponse(headers=self._headers(stream))
        add_cors(request, response)
        await response.prepare(request)
        try:
            await stream.serve(
                offset,
                response.write,
                self.endpoint.options.stream_response_bytes,
                self.endpoint.options.heartbeat,
            )
        except (ConnectionError, RuntimeError):
            pass  # the page went away; it asks again from the offset it holds
        return response

    def _headers(self, stream: Download) -> dict[str, str]:
        headers = {
            'Content-Type': 'application/octet-stream',
            **NO_STORE,
            'X-Accel-Buffering': 'no',
            'Access-Control-Expose-Headers': EXPOSED,
            wire.STREAM_WINDOW: str(stream.backlog.window),
        }
        if stream.total is not None:
            headers[wire.STREAM_TOTAL] = str(stream.total)
        end = stream.complete_at
        if end is not None:
            headers[wire.STREAM_END] = str(end)
        return headers

    def _download(self, key: int) -> Download | None:
        stream = self.endpoint.streams.downloads.get(key)
        return None if stream is None or stream.cancelled else stream

    async def ack(self, request: web.Request) -> web.Response:
        """POST /streams/down/{id}/ack: the page holds every byte before Stream-Offset."""
        key = self._key(request)
        offset = _number(request.headers.get(wire.STREAM_OFFSET), OFFSET_HEADER)
        end = _flag(request.headers.get(wire.STREAM_END))
        self._session(request)
        stream = self._download(key)
        if stream is None:
            raise HttpError(404, 'not_found', f'no stream {key} from the kernel in this session')
        if end:
            stream.acknowledge_end(offset)
        else:
            stream.ack(offset)
        return _json({'acked': stream.backlog.acked})

    async def cancel(self, request: web.Request) -> web.Response:
        """POST /streams/down/{id}/cancel: the page's consumer stopped; stop the producer."""
        key = self._key(request)
        self._session(request)
        stream = self._download(key)
        if stream is not None:
            stream.cancel()
        return _json({'cancelled': stream is not None})


def _json(data: Any) -> web.Response:
    return json_response(data, headers=NO_STORE)


def _answer(stream: Upload, stored: bool, chunk_size: int, in_flight: int) -> web.Response:
    return _json(
        {
            'stored': stored,
            'received': stream.core.received,
            'state': stream.answer_state,
            'chunk_size': chunk_size,
            'in_flight': in_flight,
        }
    )


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The request body, or None when it is longer than ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    parts: list[bytes] = []
    size = 0
    while True:
        part = await request.content.readany()
        if not part:
            return b''.join(parts)
        size += len(part)
        if size > limit:
            return None
        parts.append(part)


def stream_routes(endpoint: Endpoint) -> list[web.RouteDef]:
    """The stream routes of ``endpoint``."""
    return StreamHandlers(endpoint).routes()
