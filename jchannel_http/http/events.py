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

Whatever the transport, the page's ``POST /messages`` asks for frames too (``"carry": true``):
its answer carries those after the page's cursor, waiting at most ``poll_linger`` for one (a
handler's result, the kernel's next call), and streams and polls leave them out. A call and its
answer then take one request, and a page waits for one answer rather than two.

The aiohttp routing, the token check and CORS stay in ``http_app.py``.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Callable

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from ..protocol.clients import check_client_id
from ..errors import ProtocolError, ResyncError
from ..values import dumps
from ..server import Server
from ..protocol.session import Entry, Session

STREAM_TRANSPORTS = {'GET': 'sse-get', 'POST': 'sse-post'}
"""The transport name of an event stream, by request method."""

RECONNECT_HINT = b'retry: 0\n\n'
"""Written before a stream ends at its maximum age: reconnect at once (in milliseconds)."""


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


def answer_bytes(server: Server, value: str | None) -> int:
    """The most bytes of frames in one answer: ``poll_bytes``, or less when the page asks for
    less (``?bytes=``, after a path cut a larger answer)."""
    if value is None or value == '':
        return server.options.poll_bytes
    if not value.isdigit() or len(value) > 16 or int(value) < 1:
        raise ProtocolError(f'bytes must be a positive integer, not {value!r}')
    return min(int(value), server.options.poll_bytes)


def sse_event(seq: int, data: bytes) -> bytes:
    """One event-stream event carrying a frame."""
    return b'id: %d\ndata: %b\n\n' % (seq, data)


def hello_fields(server: Server, session: Session, cursor: int) -> dict:
    """What a page learns when it (re)connects: the session and the bounds it must respect."""
    options = server.options
    return {
        'session': session.id, 'cursor': cursor, 'ack': session.inbox.cursor,
        'heartbeat': options.heartbeat, 'max_body': options.max_body,
        'max_url': options.max_url,
    }


def _start(request: web.Request, server: Server, cursor: int) -> tuple[str, list[Entry]]:
    """Admit the request's client and resume its session from ``cursor``."""
    client = check_client_id(request.query.get('client'))
    server.admit(client)
    return client, server.resume(client, request.query.get('session'), cursor)


async def event_stream(request: web.Request, server: Server, cursor: int,
                       before_prepare: Callable[[web.StreamResponse], None]) -> web.StreamResponse:
    """``GET`` or ``POST /events``: the kernel -> page event stream from ``cursor``.

    ``before_prepare`` adds headers (CORS) before the response headers are sent.
    """
    client, entries = _start(request, server, cursor)
    link = server.link
    session = link.session
    options = server.options
    response = EventSourceResponse(sep='\n', ping_interval=options.heartbeat,
                                   send_timeout=4 * options.liveness, allow_all_methods=True)
    response.headers['Cache-Control'] = 'no-cache, no-transform'
    before_prepare(response)
    await response.prepare(request)
    generation = link.new_stream()
    server.gate.stream_opened(client, STREAM_TRANSPORTS[request.method])
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + options.stream_max_age
    try:
        hello = dumps(hello_fields(server, session, cursor))
        padding = b':' + b' ' * options.stream_padding + b'\n\n' if options.stream_padding else b''
        first = b'event: hello\nid: %d\ndata: %b\n\n' % (cursor, hello)
        sent = entries[-1].seq if entries else cursor
        entries = link.stream_share(entries)
        link.handed_out(entries, by_post=False)
        await response.write(first + padding + b''.join(sse_event(e.seq, e.data) for e in entries))
        while True:
            remaining = ends_at - loop.time()
            if remaining <= 0:
                await response.write(RECONNECT_HINT)
                break
            waited = await link.wait_after(session, sent, generation, remaining)
            if waited is None:
                break
            if not waited:
                continue
            # A POST waiting for the same frames (see carry) was woken too: let it take them
            # first, so that they travel once.
            await asyncio.sleep(0)
            sent = waited[-1].seq
            entries = link.stream_share(waited)
            link.handed_out(entries, by_post=False)
            if entries:
                await response.write(b''.join(sse_event(e.seq, e.data) for e in entries))
    except (ConnectionError, RuntimeError):
        pass  # the page went away; it resumes from its cursor on the next stream
    finally:
        response.stop_streaming()
        server.gate.stream_closed(client, time.monotonic())
    return response


def first_entries(entries: list[Entry], limit: int) -> list[Entry]:
    """The oldest entries whose frames total at most ``limit`` bytes, and at least one."""
    total = 0
    for count, entry in enumerate(entries):
        total += len(entry.data)
        if total > limit and count > 0:
            return entries[:count]
    return entries


def with_frames(fields: dict, entries: list[Entry]) -> bytes:
    """A JSON object of ``fields`` and ``frames``, the entries' frames as they were encoded."""
    head = dumps(fields)
    return head[:-1] + b',"frames":[' + b','.join(e.data for e in entries) + b']}'


def frames_response(fields: dict, entries: list[Entry]) -> web.Response:
    """The answer of a poll, or of a POST that carries frames back (never cached)."""
    return web.Response(body=with_frames(fields, entries), content_type='application/json',
                        headers={'Cache-Control': 'no-store, no-transform'})


async def long_poll(request: web.Request, server: Server, cursor: int) -> web.Response:
    """``GET /poll``: the frames after the cursor (up to ``poll_bytes`` of them), at once if some
    wait, else as soon as one is sent within the hold.

    A poll without ``session`` (the page's first) is answered at once, so the page learns its
    session; ``hold`` (seconds) may shorten the server's ``poll_hold`` for this request. Frames
    carried back to the page in a POST's answer (see ``carry``) are left out.
    """
    options = server.options
    wanted = query_seconds(request.query.get('hold'), 'hold')
    hold = options.poll_hold if wanted is None else min(wanted, options.poll_hold)
    client, entries = _start(request, server, cursor)
    link = server.link
    session = link.session
    generation = link.new_stream()
    server.gate.stream_opened(client, 'poll')
    loop = asyncio.get_running_loop()
    deadline = loop.time() + hold
    after = entries[-1].seq if entries else cursor
    entries = link.stream_share(entries)
    try:
        while not entries and 'session' in request.query:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            waited = await link.wait_after(session, after, generation, remaining)
            if waited is None:
                break
            if waited:
                await asyncio.sleep(0)  # as in event_stream: a waiting POST takes them first
                after = waited[-1].seq
                entries = link.stream_share(waited)
    finally:
        server.gate.stream_closed(client, time.monotonic())
    if session is not link.session:
        raise ResyncError('the session is over (another page took over); start a new one')
    entries = first_entries(entries, answer_bytes(server, request.query.get('bytes')))
    link.handed_out(entries, by_post=False)
    fields = {**hello_fields(server, session, cursor), 'hold': options.poll_hold}
    return frames_response(fields, entries)


async def carry(server: Server, session: Session, cursor: int, limit: int | None = None
                ) -> list[Entry]:
    """The frames to carry back in the answer to a page's ``POST /messages``: those after the
    page's ``cursor`` that no stream or poll handed out (up to ``poll_bytes``), else the first
    sent within ``poll_linger`` seconds (a handler's result, the kernel's next call). ``limit``
    (default ``poll_bytes``) bounds the bytes of frames carried.

    Each frame has one way to the page, the first that hands it out, and that way delivers it
    again if it was lost: a stream or a poll by resuming from the page's cursor, a POST by
    carrying it again when the page, whose answer was lost, posts again with the same cursor.
    """
    link = server.link
    loop = asyncio.get_running_loop()
    deadline = loop.time() + server.options.poll_linger
    entries = link.post_share(link.entries_after(cursor))
    after = max(cursor, link.streamed)
    while not entries:
        waited = await link.wait_after(session, after, None, deadline - loop.time())
        if not waited:
            return []  # the linger passed, or the session is over
        after = waited[-1].seq
        entries = link.post_share(waited)
    if session is not link.session:
        return []
    entries = first_entries(entries, server.options.poll_bytes if limit is None else limit)
    link.handed_out(entries, by_post=True)
    return entries
