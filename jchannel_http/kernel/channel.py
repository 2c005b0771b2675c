"""The kernel side of one channel: calls into the page, and the handler the page calls."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

from ..errors import StateError
from ..protocol.frames import Call, Close, Echo, Open, Pipe, Request
from ..values import JsonValue
from .endpoint import Endpoint, HasEndpoint, endpoint_of
from .loops import block_on, running_loop
from .meta_generator import MetaGenerator
from .progress import ByteStream, ProgressCallback, Source, as_source
from .user_streams import read_on

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11 on

log = logging.getLogger('jchannel_http')
T = TypeVar('T')
_keys = itertools.count(1)

CallResult: TypeAlias = JsonValue | MetaGenerator
"""What a page method's answer becomes on the kernel: a JSON value, or a MetaGenerator when the
method returned a stream (an async iterable)."""


def _end(deadline: float | None) -> float | None:
    """The loop time by which a call with ``deadline`` seconds must be over (None: never).

    Loop time is ``time.monotonic()``, the same on the caller's loop and the transport's."""
    if deadline is None:
        return None
    if not deadline >= 0:
        raise ValueError('deadline must be None or a non-negative number of seconds')
    return time.monotonic() + deadline


class Channel:
    """A channel between kernel code and the page, set up by JavaScript ``code``.

    ``code`` is the source of a JavaScript function ``(channel) => {...}`` (or a script whose
    last expression is such a function): the page evaluates it and calls it with its own side
    of the channel (typically to set ``channel.handler``); its awaited return value is the
    result of ``open``. ``name``, if given, lets HTTP clients call this channel's handler at
    ``POST <url>/channels/<name>/call/<method>``.

    ``open``, ``close``, ``echo``, ``call``, ``call_with_stream`` and ``pipe`` return asyncio
    Tasks. As in jupyter-jchannel, their ``timeout`` bounds the wait for a connected page (and
    for room in the outbox), not the page's work: a page method may take as long as it needs.
    ``deadline`` (seconds, None by default) bounds the whole call: past it the task raises
    ``TimeoutError``. A call sent to a page that goes away (it was closed, reloaded or crashed)
    fails with ``StateError``. Calling a channel that is not open (never opened, or closed)
    opens it first, with a warning in the log.
    """

    def __init__(self, server: HasEndpoint | Endpoint, code: str, name: str | None = None) -> None:
        if not isinstance(code, str):
            raise TypeError('code must be a string of JavaScript: the source of a function')
        if name is not None and (
            not isinstance(name, str) or not name or name.isdigit() or '/' in name
        ):
            raise ValueError('a channel name must be a non-empty string, not all digits, no /')
        self.key = next(_keys)
        self.name = name
        self._endpoint = endpoint_of(server)
        self._code = code
        self._handler: object = None
        self._open = False
        self._opened_in: str | None = None
        self._reopening: asyncio.Task[CallResult] | None = None
        self.context_timeout: float | None = 3
        self._endpoint.register(self)

    def __repr__(self) -> str:
        state = 'open' if self._open else 'closed'
        return f'<Channel {self.name or self.key} {state}>'

    @property
    def handler(self) -> object:
        """The object whose methods the page may call (sync or async methods); None (the
        default) has none, so a page call fails as one of a missing method."""
        return self._handler

    @handler.setter
    def handler(self, value: object) -> None:
        self._handler = value

    @property
    def is_open(self) -> bool:
        """Whether ``open`` succeeded and ``close`` was not called since."""
        return self._open

    def open(
        self, timeout: float | None = 3, *, deadline: float | None = None
    ) -> asyncio.Task[CallResult]:
        """Run the channel's code in the page; the task's result is what the code returned.

        On a channel open in the connected page the code does not run again: the task gives
        the result of its first run."""
        return self._task(self._open_in_page(timeout, _end(deadline)))

    def close(
        self, timeout: float | None = 3, *, deadline: float | None = None
    ) -> asyncio.Task[None]:
        """Make the page forget this channel; the kernel forgets it too (its name is free)."""
        return self._task(self._close(timeout, _end(deadline)))

    def echo(
        self, *args: object, timeout: float | None = 3, deadline: float | None = None
    ) -> asyncio.Task[list[JsonValue]]:
        """Send ``args`` through the page and back (a check of what JSON carries)."""
        return self._task(self._echo(args, timeout, _end(deadline)))

    def call(
        self, name: str, *args: object, timeout: float | None = 3, deadline: float | None = None
    ) -> asyncio.Task[CallResult]:
        """Call JavaScript method ``name`` of the page-side handler; the task gives its result.

        ``timeout``: seconds to wait for a connected page; ``deadline``: seconds for the
        whole call (None: as long as the page method takes)."""
        if not isinstance(name, str):
            raise TypeError('the method name must be a string')
        return asyncio.create_task(
            self._endpoint.call_on_transport(self._begin_call, name, args, timeout, _end(deadline))
        )

    def _begin_call(
        self, name: str, args: tuple[object, ...], timeout: float | None, end: float | None
    ) -> asyncio.Future[CallResult] | Coroutine[Any, Any, CallResult]:
        """On the transport's loop: the call sent at once when the channel is open in the live
        page and the outbox has room (a future, no task), else the full call to run."""
        endpoint = self._endpoint
        if self._open and self._opened_in == endpoint.session_id:
            future = endpoint.start_request(
                lambda call: Call(call, self.key, name, list(args)), end, f'call {name!r}'
            )
            if future is not None:
                return future
        return self._call(name, args, timeout, end)

    def call_sync(
        self, name: str, *args: object, timeout: float | None = 3, deadline: float | None = None
    ) -> CallResult:
        """Call JavaScript method ``name`` from synchronous code and return its result.

        The same call as ``call`` (same ``timeout`` and ``deadline``, same errors), for code
        that cannot await: a plain loop in a cell, a callback of another library. It works
        while the caller's event loop is blocked, by this very code too: the call runs on the
        transport's thread and this thread waits for it. Interrupting the wait (the
        notebook's stop button) cancels the call. Called on the transport's own thread (in a
        ``@background`` handler) it would wait for itself, so it raises StateError there.
        """
        if not isinstance(name, str):
            raise TypeError('the method name must be a string')
        end = _end(deadline)
        loop = self._endpoint.transport_loop
        if loop is None:
            raise StateError('call_sync needs a running server: await jchannel_http.start() first')
        if running_loop() is loop:
            here = (
                "the transport's own thread (a @background handler?)"
                if loop is not self._endpoint.handler_loop
                else 'the loop that runs the transport (transport_thread=False)'
            )
            raise StateError(
                f'call_sync was called on {here}: it would wait for itself; '
                f'use await channel.call({name!r}, ...) there'
            )
        return block_on(loop, self._call(name, args, timeout, end))

    def call_with_stream(
        self,
        name: str,
        stream: ByteStream,
        *args: object,
        timeout: float | None = 3,
        total: int | None = None,
        progress: ProgressCallback | None = None,
        deadline: float | None = None,
    ) -> asyncio.Task[CallResult]:
        """Call JavaScript method ``name`` with byte stream ``stream`` as its first argument.

        ``stream`` is an async iterable of bytes-like objects (or a ``Source``); the page
        method receives a MetaGenerator. ``timeout`` and ``deadline`` as in ``call`` (a
        deadline covers the transfer too). ``total`` (the size, if known) reaches the page;
        ``progress`` receives ``Progress`` snapshots.
        """
        if not isinstance(name, str):
            raise TypeError('the method name must be a string')
        source = self._readable(as_source(stream, total, progress))
        return self._task(
            self._with_stream(
                lambda call, key: Call(call, self.key, name, list(args), key),
                source,
                timeout,
                _end(deadline),
                f'call {name!r}',
            )
        )

    def pipe(
        self,
        stream: ByteStream,
        timeout: float | None = 3,
        total: int | None = None,
        progress: ProgressCallback | None = None,
        deadline: float | None = None,
    ) -> asyncio.Task[MetaGenerator]:
        """Send a byte stream through the page and back; the task gives a MetaGenerator."""
        source = self._readable(as_source(stream, total, progress))
        return self._task(self._pipe(source, timeout, _end(deadline)))

    def _task(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """A task on the caller's loop whose work runs on the transport's."""
        return asyncio.create_task(self._endpoint.on_transport(work))

    def _readable(self, source: Source) -> Source:
        """``source``, read on the caller's loop whatever loop pumps it."""
        loop = asyncio.get_running_loop()
        if self._endpoint.transport_loop in (None, loop):
            return source
        return cast(Source, read_on(loop, source))

    def page_forgot(self) -> None:
        """The page no longer knows this channel (the server started again): the next call
        opens it again."""
        self._open = False

    def destroy(self) -> None:
        """Forget this channel on the kernel (close it first to let the page forget it too)."""
        self._open = False
        self._endpoint.unregister(self)

    async def __aenter__(self) -> Self:
        await self._endpoint.on_transport(self._open_in_page(self.context_timeout))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._endpoint.on_transport(self._close(self.context_timeout))

    async def _open_in_page(self, timeout: float | None, end: float | None = None) -> CallResult:
        self._endpoint.register(self)  # again, if it was closed: a closed channel is released
        await self._endpoint.await_page(timeout, 'opening the channel', end)
        session = self._endpoint.session_id
        result = await self._endpoint.request(
            lambda call: Open(call, self.key, self._code), timeout, 'opening the channel', end
        )
        self._open = True
        self._opened_in = session
        return cast(CallResult, result)

    async def _close(self, timeout: float | None, end: float | None = None) -> None:
        """Make the page forget the channel, and release it on the kernel: its name is free
        again and ``/status`` no longer lists it (``open()`` registers it again)."""
        was_open, self._open = self._open, False
        try:
            if was_open and self._opened_in == self._endpoint.session_id:
                await self._endpoint.request(
                    lambda call: Close(call, self.key), timeout, 'closing the channel', end
                )
        finally:
            self._endpoint.unregister(self)

    async def _ready(self, timeout: float | None, end: float | None) -> None:
        if not self._open:
            if self._reopening is None or self._reopening.done():
                log.warning('channel %s is not open: opening it first', self.name or self.key)
        else:
            await self._endpoint.await_page(timeout, 'a page to call', end)
            if self._opened_in == self._endpoint.session_id:
                return
        # Never opened, closed, or opened in a page since replaced (a reload or a new tab): run
        # the channel's code there (once for every call waiting meanwhile).
        if self._reopening is None or self._reopening.done():
            self._reopening = asyncio.create_task(self._open_in_page(timeout, end))
        await asyncio.shield(self._reopening)

    async def _echo(
        self, args: tuple[object, ...], timeout: float | None, end: float | None
    ) -> list[JsonValue]:
        await self._ready(timeout, end)
        return cast(
            list[JsonValue],
            await self._endpoint.request(
                lambda call: Echo(call, self.key, list(args)), timeout, 'an echo', end
            ),
        )

    async def _call(
        self, name: str, args: tuple[object, ...], timeout: float | None, end: float | None
    ) -> CallResult:
        await self._ready(timeout, end)
        return cast(
            CallResult,
            await self._endpoint.request(
                lambda call: Call(call, self.key, name, list(args)), timeout, f'call {name!r}', end
            ),
        )

    async def _pipe(
        self, source: Source, timeout: float | None, end: float | None
    ) -> MetaGenerator:
        # the page answers a pipe with the stream it was sent (client.js), never a value
        return cast(
            MetaGenerator,
            await self._with_stream(
                lambda call, key: Pipe(call, self.key, key), source, timeout, end, 'a pipe'
            ),
        )

    async def _with_stream(
        self,
        make: Callable[[int, int], Request],
        source: Source,
        timeout: float | None,
        end: float | None,
        what: str,
    ) -> CallResult:
        await self._ready(timeout, end)
        streams = self._endpoint.streams
        key = streams.send(source)
        try:
            return cast(
                CallResult,
                await self._endpoint.request(lambda call: make(call, key), timeout, what, end),
            )
        except BaseException:
            streams.abandon(key)
            raise
