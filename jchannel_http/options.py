"""Every bound of the server, in one place, with its default.

``start(**options)`` and ``Server(**options)`` accept these names; README.md lists them in one
table. Unknown names are refused with a TypeError that lists the known ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from .protocol import wire

MiB = 1024 * 1024
TRANSPORTS = (None, *wire.TRANSPORTS)
"""The page's transports in the order it tries them; None lets it probe."""
SEND_METHODS = (None, *wire.SEND_METHODS)
"""How the page sends its frames and upload chunks; None: POST until a path refuses it."""
MAX_REQUEST_LINE = 8190
"""aiohttp's default bound on a request line; ``max_url`` above it raises the server's bound."""
ORIGIN = re.compile(r'[a-z][a-z0-9+.-]*://[^/?#\s]+|null')


@dataclass(frozen=True)
class Options:
    """Tunable bounds. Times are in seconds, sizes in bytes."""

    heartbeat: float = 15.0
    """Seconds between ``: ping`` comments on an idle event stream. A page client that has been
    silent for two heartbeats may be replaced by another."""

    outbox_messages: int = 10_000
    """Most frames the kernel keeps unacknowledged; senders wait beyond it."""

    outbox_bytes: int = 32 * MiB
    """Most encoded bytes the kernel keeps unacknowledged; senders wait beyond it."""

    max_ahead: int = 10_000
    """Most out-of-order frames held while waiting for a gap to be filled: a page frame numbered
    beyond ``cursor + 1 + max_ahead`` is refused."""

    max_body: int = 1 * MiB
    """Largest request body accepted (413 beyond); the page keeps its batches under it."""

    stream_padding: int = 2048
    """Bytes of comment after the first event, so size-threshold buffers pass it on."""

    poll_hold: float = 25.0
    """Most seconds a long-poll request is held waiting for frames (under the 30-60 s idle
    limits of common proxies); the page may ask for less after a proxy cut one short."""

    poll_bytes: int = 1 * MiB
    """Most bytes of frames in one long-poll answer (at least one frame goes): an answer is
    all or nothing, so a proxy that cuts large transfers must still let one through."""

    poll_linger: float = 0.005
    """Most seconds a page's ``POST /messages`` waits for kernel frames to carry back in its
    answer, when none wait yet (a handler's result, the kernel's next call), so that a call and
    its answer take one request."""

    stream_max_age: float = 300.0
    """Seconds after which the server ends an event stream with a ``retry:`` hint; the page
    reconnects at once and resumes (proxies that hold or time out long requests let go)."""

    client_load_timeout: float = 15.0
    """Least seconds a wait for a page lasts when it shows the bootstrap in a notebook cell (the
    first call or ``open``, or the first after a reload): the tab loads the client and connects
    within that time, whatever shorter ``timeout`` the call was given. A ``deadline`` still
    bounds it. Outside a notebook, ``timeout`` alone bounds the wait."""

    first_event_deadline: float = 3.0
    """Seconds the page waits for an event stream's first event before it asks the server for
    ``/status``: answered while the event is still missing, a proxy is buffering and the page moves
    on to the next transport; unanswered, the kernel is busy and the page keeps waiting."""

    upgrade_interval: float = 300.0
    """Seconds after which a page that moved down to a lesser transport tries the better ones
    again, and moves back up when they work (the path stopped buffering)."""

    remember_transport: float = 600.0
    """Seconds for which a tab remembers the transport and send method that worked and uses
    them again after a reload, before it probes again (the page's ``rememberTransport``); 0 turns
    the memory off."""

    transport: str | None = None
    """Force the page's transport (``'sse-get'``, ``'sse-post'`` or ``'poll'``); ``None`` probes
    them in that order."""

    send_method: str | None = None
    """Force how the page sends frames and upload chunks: ``'post'`` (request bodies) or
    ``'get'`` (encoded in the query of GET requests, for paths that refuse POST, such as Colab's
    proxy); ``None`` posts until a path refuses POST while the server answers GET, then uses GET."""

    max_url: int = 8000
    """Most characters of a URL the page builds when it sends over GET; longer batches and
    chunks are split. The default keeps the request line, with the ``&authuser=0`` that Colab's
    proxy appends, under aiohttp's 8,190 bytes and the 8 KiB that common proxies pass."""

    chunk_size: int = 512 * 1024
    """Largest chunk of a page -> kernel stream accepted in one POST (413 beyond; the page then
    halves its chunks). The default stays under nginx's default 1 MiB body cap."""

    chunks_in_flight: int = 4
    """Most chunk POSTs of one page -> kernel stream the page keeps in flight at once."""

    stream_buffer: int = 8 * MiB
    """Most bytes one stream holds in the kernel: chunks received and not yet consumed, or
    bytes produced and not yet acknowledged by the page. A full buffer pauses the sender."""

    streams_buffer: int = 32 * MiB
    """Most bytes all page -> kernel streams together hold in the kernel (received and not yet
    consumed). A chunk beyond it is paused and refused like one beyond a full ``stream_buffer``,
    and the page sends it again; a stream whose consumer took everything may always store one
    chunk, so no stream waits for others forever."""

    stream_response_bytes: int | None = None
    """Most bytes of a kernel -> page stream sent in one GET response (for proxies that cut
    large responses); the page continues with the next range. ``None``: no cap."""

    max_requests: int = 64
    """Most authenticated requests handled at once, event streams included (429 beyond)."""

    head_timeout: float = 10.0
    """Seconds a connection may take to send a complete request head, from when it opened or
    from its first byte after the previous answer; it is closed beyond them."""

    keepalive_timeout: float = 75.0
    """Seconds an idle keep-alive connection stays open (aiohttp's default is an hour). Longer
    than the 60 s after which common proxies (nginx, cloud load balancers) drop idle upstream
    connections, so that a proxy, not the server, closes a connection it may be reusing."""

    max_unauthenticated: int = 128
    """Most open connections that have not shown the token; beyond it the oldest idle ones are
    closed (a page's new connection shows the token in its first request, so a flood of idle
    connections cannot crowd it out)."""

    fd_headroom: int = 64
    """File descriptors the server leaves to the rest of the kernel: a connection accepted with
    fewer left makes the server close idle connections (or that connection)."""

    body_timeout: float = 60.0
    """Seconds a request's body may take to arrive once its head did; a body still incomplete
    then is answered 408 and its ``max_requests`` slot is freed."""

    allow_origins: tuple[str, ...] | None = None
    """Origins whose pages may call the server; ``None`` allows any (the token is still needed)."""

    debug: bool = False
    """Send Python tracebacks to the page with errors."""

    transport_thread: bool = True
    """Run the transport (HTTP server, event streams, acknowledgements, streams) on a thread and
    event loop of its own, so the channel keeps serving the page while the caller's loop is
    blocked (a cell that computes). False keeps it on the caller's loop: the channel then
    freezes while that loop is busy, and ``@background`` and ``call_sync`` lose their point."""

    tunnel_timeout: float = 30.0
    """Seconds a tunnel (``tunnel=``) may take to give its URL and to answer through it."""

    cloudflared_path: str | None = None
    """The cloudflared binary for ``tunnel='cloudflared'``; ``None`` looks for it on PATH."""

    shutdown_timeout: float = 1.0
    """Seconds ``stop()`` lets the requests being handled finish before it cancels them
    (jupyter-jchannel's option of the same name, whose default is 60)."""

    # jupyter-jchannel's WebSocket settings, accepted so that its code runs unchanged; over
    # HTTP they mean nothing (its ``max_msg_size`` is ``max_body`` here, and its
    # ``keepalive_timeout`` and ``heartbeat`` have counterparts of the same name above).
    send_timeout: float | None = 3
    """No effect (jupyter-jchannel: how long a page's stream upload waits for its socket)."""

    receive_timeout: float | None = None
    """No effect (jupyter-jchannel: aiohttp's WebSocket receive timeout)."""

    high_water_mark: int = 1
    """No effect (jupyter-jchannel: chunks of an upload queued in the kernel); here
    ``stream_buffer`` and ``streams_buffer`` bound what a stream holds."""

    def __post_init__(self) -> None:
        if not isinstance(self.transport_thread, bool):
            raise TypeError('transport_thread must be True or False')
        if self.heartbeat <= 0:
            raise ValueError('heartbeat must be a positive number of seconds')
        for name in (
            'outbox_messages',
            'outbox_bytes',
            'max_ahead',
            'max_body',
            'poll_bytes',
            'max_requests',
        ):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be a positive integer')
        for name in (
            'chunk_size',
            'chunks_in_flight',
            'stream_buffer',
            'streams_buffer',
            'max_unauthenticated',
        ):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be a positive integer')
        if self.stream_response_bytes is not None and self.stream_response_bytes < 1:
            raise ValueError('stream_response_bytes must be None (no cap) or a positive integer')
        if self.stream_padding < 0:
            raise ValueError('stream_padding cannot be negative')
        if not self.poll_linger >= 0:
            raise ValueError('poll_linger must be a non-negative number of seconds')
        if self.fd_headroom < 0:
            raise ValueError('fd_headroom cannot be negative')
        if not self.shutdown_timeout >= 0:
            raise ValueError('shutdown_timeout must be a non-negative number of seconds')
        for name in (
            'poll_hold',
            'stream_max_age',
            'first_event_deadline',
            'upgrade_interval',
            'client_load_timeout',
            'head_timeout',
            'keepalive_timeout',
            'body_timeout',
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be a positive number of seconds')
        if not (
            isinstance(self.remember_transport, (int, float))
            and not isinstance(self.remember_transport, bool)
            and 0 <= self.remember_transport < float('inf')
        ):
            raise ValueError(
                'remember_transport must be a number of seconds >= 0 (0 turns the '
                f'memory off), not {self.remember_transport!r}'
            )
        if self.send_method not in SEND_METHODS:
            raise ValueError(f'send_method must be one of {SEND_METHODS}, not {self.send_method!r}')
        if not 1024 <= self.max_url <= 65536:
            raise ValueError('max_url must be an integer from 1024 to 65536')
        if self.transport not in TRANSPORTS:
            raise ValueError(f'transport must be one of {TRANSPORTS}, not {self.transport!r}')
        if not self.tunnel_timeout > 0:
            raise ValueError('tunnel_timeout must be a positive number of seconds')
        if self.allow_origins is not None:
            object.__setattr__(self, 'allow_origins', _origins(self.allow_origins))

    @property
    def liveness(self) -> float:
        """Seconds of silence after which a page client counts as gone."""
        return 2 * self.heartbeat

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Options:
        """Build options from keyword arguments, refusing unknown names clearly."""
        known = {item.name for item in fields(cls)}
        if 'max_msg_size' in kwargs:  # jupyter-jchannel's name for the same bound
            size = kwargs.pop('max_msg_size')
            if kwargs.setdefault('max_body', size) != size:
                raise ValueError('max_msg_size is another name of max_body: give one of them')
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(
                f'unknown option(s) {unknown}; known options are {sorted(known | {"max_msg_size"})}'
            )
        return cls(**kwargs)


def _origins(value: Any) -> tuple[str, ...]:
    """``allow_origins`` as a tuple, refusing what could never match a browser's Origin."""
    if isinstance(value, str):
        raise TypeError(
            f'allow_origins must be a list of origins such as [{value!r}], not a string'
        )
    origins = list(value)
    for origin in origins:
        if not isinstance(origin, str) or not ORIGIN.fullmatch(origin.lower()):
            raise ValueError(
                f'allow_origins: {origin!r} is not an origin; write scheme://host'
                "[:port] with no path or trailing slash, e.g. 'http://localhost:8888'"
            )
    return tuple(origin.lower() for origin in origins)  # browsers send origins in lower case


def client_options(options: Options) -> dict[str, Any]:
    """The page client's options that follow the server's ``options`` (``token`` aside)."""
    page: dict[str, Any] = {
        'firstEventDeadline': options.first_event_deadline,
        'upgradeInterval': options.upgrade_interval,
        'rememberTransport': options.remember_transport,
        'maxUrl': options.max_url,
    }
    if options.send_method is not None:
        page['sendMethod'] = options.send_method
    if options.transport is not None:
        page['transport'] = options.transport
    return page
