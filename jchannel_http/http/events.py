"""Kernel -> page delivery over HTTP: event streams (GET or POST) and long-poll.

Each transport resumes the current session from the page's cursor (acknowledging everything up
to it) and hands over the frames after it:

- ``sse-get`` and ``sse-post``: ``GET`` or ``POST /events`` answer with an event stream that
  begins with a ``hello`` event padded by a comment (so size-threshold buffers pass it on),
  then carries every frame as it is sent, and ends after ``stream_max_age`` with a ``retry:``
  hint (the page reconnects at once, resuming from its cursor).
- ``poll``: ``GET /poll`` answers one JSON object with the hello fields and the frames after
  the cursor (all of them, up to ``poll_bytes``), at once when some are waiting, else as soon as
  one is sent, or empty after ``poll_hold`` seconds.

Whatever the transport, the page's ``POST /messages`` asks for frames too (``"carry": true``,
see messages.py); which way takes which frame is protocol/delivery.py's rule. This module only
reads the request and writes the bytes; the kernel's ``Feed`` chooses and waits.
"""

from __future__ import annotations

import asyncio
import math

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from ..errors import ProtocolError
from ..options import Options
from ..protocol import wire
from ..values import dumps
from .context import ENDPOINT
from .cors import add_cors
from .replies import frames_response


def query_seconds(value: str | None, name: str) -> float | None:
    """A non-negative number of seconds from a query parameter (None when absent)."""
    if value is None or value == '':
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise ProtocolError(f'{name} must be a non-negative number of seconds, not {value!r}')
    return seconds


def answer_bytes(options: Options, value: str | None) -> int:
    """The most bytes of frames in one answer: ``poll_bytes``, or less when the page asks for
    less (``?bytes=``, after a path cut a larger answer)."""
    if value is None or value == '':
        return options.poll_bytes
    if not value.isdigit() or len(value) > 16 or int(value) < 1:
        raise ProtocolError(f'bytes must be a positive integer, not {value!r}')
    return min(int(value), options.poll_bytes)


def _cursor(request: web.Request) -> int:
    cursor = wire.sequence_number(request.query.get('cursor'), 'cursor')
    if request.headers.get(wire.LAST_EVENT_ID):  # wins over the cursor, which must be valid
        cursor = wire.sequence_number(request.headers[wire.LAST_EVENT_ID], wire.LAST_EVENT_ID)
    return cursor


async def events(request: web.Request) -> web.StreamResponse:
    """``GET`` or ``POST /events``: the kernel -> page event stream from the page's cursor."""
    cursor = _cursor(request)
    endpoint = request.app[ENDPOINT]
    client = wire.check_client_id(request.query.get('client'))
    feed = endpoint.feed(client, request.query.get('session'), cursor)
    options = endpoint.options
    response = EventSourceResponse(
        sep='\n',
        ping_interval=options.heartbeat,
        send_timeout=4 * options.liveness,
        allow_all_methods=True,
    )
    response.headers['Cache-Control'] = 'no-cache, no-transform'
    add_cors(request, response)
    await response.prepare(request)
    feed.open(wire.STREAM_TRANSPORTS[request.method])
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + options.stream_max_age
    try:
        first = wire.sse_hello(cursor, dumps(feed.hello()), options.stream_padding)
        await response.write(first + b''.join(wire.sse_event(e.seq, e.data) for e in feed.first()))
        while True:
            remaining = ends_at - loop.time()
            if remaining <= 0:
                await response.write(wire.RECONNECT_HINT)
                break
            entries = await feed.next(remaining)
            if entries is None:
                break
            if entries:
                await response.write(b''.join(wire.sse_event(e.seq, e.data) for e in entries))
    except (ConnectionError, RuntimeError):
        pass  # the page went away; it resumes from its cursor on the next stream
    finally:
        response.stop_streaming()
        feed.close()
    return response


async def poll(request: web.Request) -> web.Response:
    """``GET /poll``: the frames after the cursor (up to ``poll_bytes`` of them), at once if some
    wait, else as soon as one is sent within the hold.

    A poll without ``session`` (the page's first) is answered at once, so the page learns its
    session; ``hold`` (seconds) may shorten the server's ``poll_hold`` for this request. Frames
    carried back to the page in a POST's answer are left out.
    """
    cursor = wire.sequence_number(request.query.get('cursor'), 'cursor')
    endpoint = request.app[ENDPOINT]
    options = endpoint.options
    wanted = query_seconds(request.query.get('hold'), 'hold')
    hold = options.poll_hold if wanted is None else min(wanted, options.poll_hold)
    client = wire.check_client_id(request.query.get('client'))
    feed = endpoint.feed(client, request.query.get('session'), cursor)
    feed.open(wire.POLL)
    try:
        entries = await feed.poll(
            hold, answer_bytes(options, request.query.get('bytes')), wait='session' in request.query
        )
    finally:
        feed.close()
    return frames_response({**feed.hello(), 'hold': options.poll_hold}, entries)
