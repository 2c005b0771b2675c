"""Bounds on the server's TCP connections, so that idle or slow ones cannot use up the kernel.

aiohttp waits as long as a peer likes for a request head and keeps idle connections for an
hour; each costs a file descriptor, and a kernel that runs out of them can open no file and
start no process. ``ConnectionGuard`` closes:

* a connection that has not sent a complete request head within ``head_timeout`` seconds of
  opening (or of its first byte after the previous answer);
* the oldest idle connections that never showed the token, while more than
  ``max_unauthenticated`` such connections are open (a real page's new connection shows the token
  in its first request, so it is never the oldest for long);
* any connection accepted while fewer than ``fd_headroom`` descriptors are left, after idle
  ones were closed to make room.

Idle keep-alive connections are closed by aiohttp itself after ``keepalive_timeout`` seconds
(``runner_options``). ``GuardedRunner`` is an ``AppRunner`` whose connections are
``GuardedHandler`` objects reporting to the guard; the HTTP middleware reports each request's
start and end (``begin`` / ``end``) and whether it carried the token (``authenticate``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..options import MAX_REQUEST_LINE, Options

if sys.platform != 'win32':  # pragma: no branch - resource is not on Windows
    import resource

log = logging.getLogger('jchannel_http')

ACCEPT_ERROR = 'socket.accept() out of system resource'
"""The message asyncio logs each time its accept loop finds no descriptor left."""


def descriptor_limit() -> int | None:
    """The process's soft limit on open file descriptors, or None when unknown or unlimited."""
    if sys.platform == 'win32':
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


class ConnectionState:
    """What the guard knows about one connection."""

    __slots__ = ('busy', 'head_since', 'opened', 'token')

    def __init__(self, now: float) -> None:
        self.opened = now
        self.head_since: float | None = now
        """When the head being waited for started (None while idle between requests)."""
        self.busy = 0
        """Requests of this connection being handled."""
        self.token = False
        """Whether a request of this connection carried the token."""


class ConnectionGuard:
    """Tracks the server's connections and closes those that break the bounds above."""

    def __init__(self, options: Options) -> None:
        self.head_timeout = options.head_timeout
        self.max_unauthenticated = options.max_unauthenticated
        self.fd_headroom = options.fd_headroom
        self.closed_by_guard = 0
        """Connections the guard closed (for tests and ``/status``)."""
        self._connections: dict[RequestHandler, ConnectionState] = {}
        self._unauthenticated: OrderedDict[RequestHandler, None] = OrderedDict()
        self._sweeper: asyncio.Task[None] | None = None
        self._limit = descriptor_limit()
        self._log_filter = AcceptErrorFilter()
        self._warned_at = -float('inf')

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the periodic check of head deadlines (call inside the running loop)."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep())
            logging.getLogger('asyncio').addFilter(self._log_filter)

    async def stop(self) -> None:
        """Stop the periodic check."""
        logging.getLogger('asyncio').removeFilter(self._log_filter)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None

    async def _sweep(self) -> None:
        interval = min(1.0, self.head_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            self.close_late_heads(time.monotonic())

    # -- what connections and requests report ----------------------------------------------

    def opened(self, handler: RequestHandler, fd: int | None) -> None:
        """A connection was accepted (``fd`` is its descriptor number, when known)."""
        self._connections[handler] = ConnectionState(time.monotonic())
        self._unauthenticated[handler] = None
        while len(self._unauthenticated) > self.max_unauthenticated:
            if not self._evict_unauthenticated(handler):
                break
        if fd is not None and self._limit is not None and fd >= self._limit - self.fd_headroom:
            self._make_room(handler)

    def closed(self, handler: RequestHandler) -> None:
        """A connection is gone."""
        self._connections.pop(handler, None)
        self._unauthenticated.pop(handler, None)

    def received(self, handler: RequestHandler) -> None:
        """Bytes arrived on a connection: between requests they start a new head."""
        state = self._connections.get(handler)
        if state is not None and state.busy == 0 and state.head_since is None:
            state.head_since = time.monotonic()

    def begin(self, protocol: Any) -> None:
        """A request head was complete and its handling starts."""
        state = self._connections.get(protocol)
        if state is not None:
            state.busy += 1
            state.head_since = None

    def end(self, protocol: Any) -> None:
        """A request was answered; the connection waits for the next head without deadline."""
        state = self._connections.get(protocol)
        if state is not None and state.busy > 0:
            state.busy -= 1
            state.head_since = None

    def authenticate(self, protocol: Any) -> None:
        """A request of this connection carried the token."""
        state = self._connections.get(protocol)
        if state is not None and not state.token:
            state.token = True
            self._unauthenticated.pop(protocol, None)

    # -- closing ---------------------------------------------------------------------------

    def close_late_heads(self, now: float) -> int:
        """Close the connections whose head is late; return how many."""
        late = [
            handler
            for handler, state in self._connections.items()
            if state.busy == 0
            and state.head_since is not None
            and now - state.head_since > self.head_timeout
        ]
        for handler in late:
            self._close(handler)
        if late:
            log.debug(
                'closed %d connection(s) that sent no complete request head within '
                '%g s (head_timeout)',
                len(late),
                self.head_timeout,
            )
        return len(late)

    def _close(self, handler: RequestHandler) -> None:
        self.closed(handler)
        self.closed_by_guard += 1
        handler.force_close()

    def _evict_unauthenticated(self, spare: RequestHandler) -> bool:
        """Close the oldest idle connection without the token (any other if none is idle)."""
        victim = None
        for handler in self._unauthenticated:
            if handler is spare:
                continue
            if self._connections[handler].busy == 0:
                victim = handler
                break
            if victim is None:
                victim = handler
        if victim is None:
            return False
        self._close(victim)
        return True

    def _make_room(self, newcomer: RequestHandler) -> None:
        """Few descriptors are left: close idle connections (those without the token and the
        oldest first), or the newcomer when none is idle."""
        idle = sorted(
            (state.token, state.opened, id(handler), handler)
            for handler, state in self._connections.items()
            if handler is not newcomer and state.busy == 0
        )
        victims = [item[-1] for item in idle[: max(1, self.fd_headroom // 4)]] or [newcomer]
        for handler in victims:
            self._close(handler)
        now = time.monotonic()
        if now - self._warned_at >= 60:
            self._warned_at = now
            log.warning(
                'few file descriptors are left (fd_headroom=%d): closing idle connections',
                self.fd_headroom,
            )

    def status(self) -> dict[str, int]:
        """Counts for ``GET /status``."""
        return {
            'open': len(self._connections),
            'unauthenticated': len(self._unauthenticated),
            'closed_by_guard': self.closed_by_guard,
        }


class AcceptErrorFilter(logging.Filter):
    """Lets asyncio's "out of system resource" accept error through once per ``every`` seconds.

    asyncio logs it at each retry of its accept loop while no descriptor is left; the guard
    keeps descriptors free, and this keeps the kernel's output readable if something else used
    them up.
    """

    def __init__(self, every: float = 60.0) -> None:
        super().__init__()
        self.every = every
        self.suppressed = 0
        self._last = -float('inf')

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(ACCEPT_ERROR):
            return True
        now = time.monotonic()
        if now - self._last < self.every:
            self.suppressed += 1
            return False
        self._last = now
        if self.suppressed:
            record.msg = f'{record.msg} ({self.suppressed} more since the last report)'
            self.suppressed = 0
        return True


class GuardedHandler(RequestHandler):
    """aiohttp's connection protocol, reporting to a ``ConnectionGuard``."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.guard = manager.guard

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info('socket')
        self.guard.opened(self, sock.fileno() if sock is not None else None)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.guard.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.guard.received(self)
        super().data_received(data)


class GuardedServer(web.Server):
    """aiohttp's low-level server, making ``GuardedHandler`` connections."""

    def __init__(self, guard: ConnectionGuard, handler: Any, **kwargs: Any) -> None:
        self.guard = guard
        self._handler_args = {
            key: value
            for key, value in kwargs.items()
            if key not in ('request_factory', 'handler_cancellation', 'loop')
        }
        super().__init__(handler, **kwargs)

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=asyncio.get_running_loop(), **self._handler_args)


class GuardedRunner(web.AppRunner):
    """An ``AppRunner`` whose server makes guarded connections."""

    def __init__(self, app: web.Application, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.guard = guard
        self._server_args = {
            key: value
            for key, value in kwargs.items()
            if key not in ('handle_signals', 'shutdown_timeout')
        }

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # runs the application's startup and freezes it
        return GuardedServer(
            self.guard,
            plain.request_handler,
            request_factory=plain.request_factory,
            **self._server_args,
        )


def runner_options(options: Options) -> dict[str, Any]:
    """aiohttp's own connection settings that follow the options."""
    # a GET carrying frames has a request line of up to max_url characters plus what a proxy
    # adds to it (Colab's appends "&authuser=0"), the method and the protocol
    return {
        'keepalive_timeout': options.keepalive_timeout,
        'max_line_size': max(MAX_REQUEST_LINE, options.max_url + 256),
    }


_T = TypeVar('_T')


class BodyTimeout(Exception):
    """A request's body did not arrive within ``body_timeout`` seconds (answered 408)."""


async def within_body_deadline(
    request: web.Request, handler: Callable[[web.Request], Awaitable[_T]], timeout: float
) -> _T:
    """``await handler(request)``, cancelled with BodyTimeout if the request's body is still
    incomplete ``timeout`` seconds from now. A body that already arrived costs no timer."""
    if request.content.is_eof():
        return await handler(request)
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        if not request.content.is_eof():
            expired = True
            task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await handler(request)
    except asyncio.CancelledError:
        uncancel = getattr(task, 'uncancel', None)  # Python 3.11+
        if not expired or (uncancel is not None and uncancel() > 0):
            raise
        raise BodyTimeout(
            f'the request body did not arrive within {timeout:g} s (body_timeout)'
        ) from None
    finally:
        timer.cancel()
