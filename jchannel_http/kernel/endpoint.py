"""The kernel's end of the conversation with one page at a time.

``Endpoint`` owns what lives as long as the server: the channels (by key and by name), which page
client is current (``ClientGate``), and, while the server runs, the ``Link`` (session and
outbox), the ``Rpc`` (calls both ways) and the ``StreamHub`` (byte streams). Channels call it to
wait for a page and to send requests; the HTTP adapter calls one of its methods per request
(admit a client, take a batch, resume a stream, carry frames back, report the status). It knows
neither aiohttp nor the server that listens for it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from ..errors import ResyncError, StateError
from ..options import Options, client_options
from ..protocol import wire
from ..protocol.clients import Admission, ClientGate
from ..protocol.delivery import first_entries
from ..protocol.frames import Frame, Invalid, Request, Stop
from ..protocol.session import Entry
from .feeds import Feed
from .link import Link
from .loops import cross, cross_call, running_loop
from .rpc import Rpc, Unsent
from .transfers import StreamHub

log = logging.getLogger('jchannel_http')
_CHANNEL_KEY = wire.POSITIVE_ID
T = TypeVar('T')


class Registered(Protocol):
    """What the endpoint knows of a channel (see channel.py)."""

    key: int
    name: str | None

    @property
    def is_open(self) -> bool: ...

    @property
    def handler(self) -> object: ...

    def page_forgot(self) -> None:
        """The page no longer knows the channel (the server started again)."""


class HasEndpoint(Protocol):
    """What a Channel is made with: a server (or anything else) that has an endpoint."""

    @property
    def endpoint(self) -> Endpoint: ...


class Endpoint:
    """Channels, the current page client and its session; ``url()`` is the address the browser
    uses (for error texts). ``on_page_wanted`` runs when a call finds no page (the notebook
    shows its bootstrap again), ``on_page_admitted`` when a page comes in."""

    def __init__(self, url: Callable[[], str], options: Options) -> None:
        self.url = url
        self.options = options
        self.on_page_wanted: Callable[[], bool] | None = None
        self.on_page_admitted: Callable[[], None] | None = None
        self._channels: dict[int, Registered] = {}
        self._names: dict[str, Registered] = {}
        self._registry = threading.Lock()  # channels are made on the caller's thread
        self.transport_loop: asyncio.AbstractEventLoop | None = None
        """The loop the transport runs on (None: whichever loop awaits)."""
        self.handler_loop: asyncio.AbstractEventLoop | None = None
        """Where ordinary handler methods run: the loop that started the server (None: the
        transport's)."""
        self._gate = ClientGate(options.liveness)
        self._link: Link | None = None
        self._rpc: Rpc | None = None
        self._streams: StreamHub | None = None
        self._arrival = asyncio.Event()
        self._listening = False
        self._stopped = False
        self._started_at = 0.0
        self._watchdog: asyncio.Task[None] | None = None
        self._dismissing: asyncio.Future[None] | None = None

    # -- lifecycle (driven by the server) ----------------------------------------------------

    def begin(self, options: Options) -> None:
        """A new life with ``options``: a fresh link, calls and streams; after a stop, a fresh
        gate, and every channel closed (the page forgot them)."""
        self.options = options
        if self._stopped:
            self._stopped = False
            self._gate = ClientGate(options.liveness)
            for channel in self._listed():
                channel.page_forgot()  # the next call opens it again
        self._link = Link(options)
        self._streams = StreamHub(options, lambda: self._gate.is_live(time.monotonic()))
        self._rpc = Rpc(self._link, self._channels.get, options.debug, self._streams)
        self._rpc.handler_loop = self.handler_loop

    async def on_transport(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the transport's loop and await it on this one."""
        loop = self.transport_loop
        if loop is None:
            return await work
        return await cross(loop, work)

    async def call_on_transport(self, function: Callable[..., Any], *args: Any) -> Any:
        """Call ``function(*args)`` on the transport's loop (awaiting what it returns there)
        and await the outcome on this one; a plain call when there is no other loop."""
        loop = self.transport_loop
        if loop is None or loop is asyncio.get_running_loop():
            result = function(*args)
            return await result if inspect.isawaitable(result) else result
        return await cross_call(loop, function, *args, caught=False)

    def start_request(
        self, make: Callable[[int], Request], end: float | None, what: str
    ) -> asyncio.Future[Any] | None:
        """``request`` without a task when it can go out now (a page is live and the outbox has
        room): the future of the answer; None when ``request`` must wait for something."""
        if self._rpc is None or self._stopped or not self._listening or not self.page_live():
            return None
        return self._rpc.start_request(make, end, what)

    def on_transport_thread(self) -> bool:
        """Whether this thread runs the transport's loop."""
        loop = self.transport_loop
        return loop is not None and running_loop() is loop

    def listening(self) -> None:
        """The server accepts connections."""
        self._listening = True

    def failed(self) -> None:
        """The start failed: the next ``begin`` is a fresh life."""
        self._listening = False
        self._stopped = True

    def serving(self) -> None:
        """The server is reachable (its tunnel, if any, is open): watch the page."""
        self._started_at = time.monotonic()
        self._watchdog = asyncio.create_task(self._watch_page())

    @property
    def stopped(self) -> bool:
        """Whether the server was stopped (and not started again)."""
        return self._stopped

    async def stop(self) -> None:
        """Waiting calls fail with StateError, the page is told to stop, streams end."""
        self._stopped = True
        self._arrival.set()
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
            self._watchdog = None
        await self.dismiss_page()
        if self._link is not None:
            self._link.stop()
        if self._rpc is not None:
            self._rpc.fail_all(StateError(wire.SERVER_STOPPED))
            await self._rpc.stop()
        if self._streams is not None:
            await self._streams.stop()
        self._listening = False

    async def _watch_page(self) -> None:
        """Fail the kernel calls sent to a page that went away (it released the server, or it
        has been silent for two heartbeats): without a ``deadline`` nothing else would end them.

        A tick that comes late (the kernel's loop was blocked, so the page could not be heard)
        is skipped: the page gets a fresh chance to be heard first.
        """
        loop = asyncio.get_running_loop()
        interval = min(1.0, self.options.liveness / 4)
        last = loop.time()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            late, last = now - last > 3 * interval, now
            if late or self._rpc is None or self._rpc.pending == 0:
                continue
            if self._gate.current is None or self._gate.is_live(time.monotonic()):
                continue
            failed = self._rpc.pending
            self._rpc.fail_all(
                StateError(
                    'the page went away (it released the server, or was silent for '
                    f'{self.options.liveness:g} s); the call may or may not have run in it'
                )
            )
            log.info('failed %d call(s) sent to a page that went away', failed)

    async def dismiss_page(self) -> None:
        """Tell a connected page that the server stops, so that its client stops retrying."""
        if self._rpc is None or not self._gate.is_live(time.monotonic()):
            return
        request = asyncio.ensure_future(self._rpc.request(Stop))
        for _ in range(40):  # at most 2 s; the page stops at once and releases the server
            if request.done() or not self._gate.is_live(time.monotonic()):
                break
            await asyncio.sleep(0.05)
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)

    def stop_client(self) -> None:
        """Dismiss the connected page in the background (once at a time)."""
        if self._dismissing is None or self._dismissing.done():
            self._dismissing = asyncio.ensure_future(self.dismiss_page())

    # -- what the current life holds -----------------------------------------------------------

    @property
    def link(self) -> Link:
        """The current conversation with the page."""
        if self._link is None:
            raise StateError('the server is not running')
        return self._link

    @property
    def rpc(self) -> Rpc:
        """Kernel-side call bookkeeping."""
        if self._rpc is None:
            raise StateError('the server is not running')
        return self._rpc

    @property
    def streams(self) -> StreamHub:
        """The byte streams of the current session."""
        if self._streams is None:
            raise StateError('the server is not running')
        return self._streams

    @property
    def gate(self) -> ClientGate:
        """Which page client is current."""
        return self._gate

    @property
    def session_id(self) -> str:
        """The id of the current session."""
        return self.link.session.id

    def page_live(self) -> bool:
        """Whether a page client is connected now."""
        return self._gate.is_live(time.monotonic())

    # -- channels ------------------------------------------------------------------------------

    def channel(self, key: str) -> Registered | None:
        """The channel named ``key``, or whose numeric key is ``key``."""
        if key in self._names:
            return self._names[key]
        return self._channels.get(int(key)) if _CHANNEL_KEY.fullmatch(key) else None

    def register(self, channel: Registered) -> None:
        """Know ``channel`` (ValueError when its name is taken)."""
        with self._registry:
            if self._channels.get(channel.key) is channel:
                return
            if channel.name is not None:
                if channel.name in self._names:
                    raise ValueError(f'a channel named {channel.name!r} exists already')
                self._names[channel.name] = channel
            self._channels[channel.key] = channel

    def unregister(self, channel: Registered) -> None:
        """Forget ``channel``: its name is free again."""
        with self._registry:
            self._channels.pop(channel.key, None)
            if channel.name is not None and self._names.get(channel.name) is channel:
                del self._names[channel.name]

    def _listed(self) -> list[Registered]:
        with self._registry:
            return list(self._channels.values())

    # -- kernel -> page requests ---------------------------------------------------------------

    def _check_running(self) -> None:
        if self._stopped or not self._listening:
            raise StateError(wire.SERVER_STOPPED if self._stopped else wire.NOT_RUNNING)

    async def await_page(self, timeout: float | None, what: str, end: float | None = None) -> None:
        """Return once a page is connected, waiting at most ``timeout`` seconds for one (and
        not beyond the loop time ``end``, a call's deadline).

        A missing page is asked for first (``on_page_wanted``: in a notebook, the server shows
        the bootstrap again; after a reload, the tab has no client). When it was asked for, the
        wait lasts at least ``client_load_timeout`` so that the tab can load the client.
        """
        if self.page_live():
            return
        wanted = self.on_page_wanted is not None and not self._stopped and self.on_page_wanted()
        if wanted and timeout is not None:  # the tab needs time to load the client it just got
            timeout = max(timeout, self.options.client_load_timeout)
        loop = asyncio.get_running_loop()
        bounds = [
            bound
            for bound in (None if timeout is None else loop.time() + timeout, end)
            if bound is not None
        ]
        until = min(bounds) if bounds else None
        while True:
            self._arrival.clear()
            self._check_running()
            if self.page_live():
                return
            remaining = None if until is None else until - loop.time()
            if remaining is not None and remaining <= 0:
                waited = (
                    'until the deadline' if end is not None and until == end else f'{timeout} s'
                )
                raise StateError(wire.no_page(self.url(), waited, what))
            try:
                await asyncio.wait_for(self._arrival.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def request(
        self,
        make: Callable[[int], Request],
        timeout: float | None,
        what: str,
        end: float | None = None,
    ) -> Any:
        """Send a request to the connected page and return its answer.

        ``timeout`` bounds the wait for room in the outbox; ``end`` (a loop time, the call's
        deadline) the whole request. Without ``end`` the answer is awaited as long as the page
        that got the request stays (``_watch_page`` fails it when that page goes away).
        """
        if self._rpc is None or self._stopped:
            raise StateError(wire.NOT_RUNNING if not self._stopped else wire.SERVER_STOPPED)
        try:
            return await self._rpc.request(make, timeout, end)
        except Unsent:
            if not self.page_live():
                raise StateError(wire.no_page(self.url(), f'{timeout} s', what)) from None
            raise TimeoutError(
                f'the page did not take {what} within {timeout} s: the outbox '
                'stayed full (the page does not acknowledge)'
            ) from None
        except asyncio.TimeoutError:
            raise TimeoutError(f'the page did not answer {what} by its deadline') from None

    # -- the page client (what the HTTP adapter calls) -----------------------------------------

    def admit(self, client: str) -> Admission:
        """Let ``client`` in (ClientConflict while another is live); renew on takeover."""
        admission = self._gate.admit(client, time.monotonic())
        if admission is Admission.TAKEOVER:
            self.renew('another page took over (a reload or a new tab)')
        self._arrival.set()
        if self.on_page_admitted is not None:
            self.on_page_admitted()
        return admission

    def renew(self, reason: str) -> None:
        """Start a new session: kernel calls waiting for the old page fail with StateError."""
        log.info('new session: %s', reason)
        self.link.renew()
        if self._streams is not None:
            self._streams.reset(reason)
        self.rpc.fail_all(StateError(f'{reason}; the call may or may not have run in the old page'))

    def join(self, client: str, session: str) -> None:
        """Admit ``client`` to ``session``, which must be the current one (else ResyncError)."""
        self.admit(client)
        if session != self.link.session.id:
            raise ResyncError(wire.SESSION_OVER)

    def resume(self, client: str, session: str | None, cursor: int) -> list[Entry]:
        """Where the stream of ``client`` starts: the frames after ``cursor``.

        Raises ResyncError (HTTP 410) when ``session`` is not the current one or ``cursor``
        cannot be served; the page then starts over with no session.
        """
        current = self.link.session
        if session is None:
            if current.inbox.cursor > 0 or current.outbox.acked > 0:
                self.renew('the page started over')
        elif session != current.id:
            raise ResyncError(wire.SESSION_OVER)
        elif cursor < current.outbox.acked and client == self._gate.current:
            # The session's own page acknowledged more than this: the request is an old one
            # sent again (a browser retries a request whose connection was cut, cursor and all),
            # not a page that lost its state. Serve it from what the page has not acknowledged.
            log.debug(
                'request from cursor %d after frames up to %d were acknowledged: a replay',
                cursor,
                current.outbox.acked,
            )
            cursor = current.outbox.acked
        try:
            return self.link.resume(cursor)  # an acknowledgement: it may make room
        except ResyncError as exc:
            self.renew(f'the page asked for a resync: {exc}')
            raise

    def feed(self, client: str, session: str | None, cursor: int) -> Feed:
        """Admit ``client`` and resume its session from ``cursor``, for a stream or a poll."""
        self.admit(client)
        entries = self.resume(client, session, cursor)
        return Feed(self.link, self._gate, self.options, client, cursor, entries)

    def acknowledge(self, client: str, ack: int, method: str) -> int:
        """The page holds the kernel's frames up to ``ack`` (a part of a batch came in); the
        inbox cursor, what the page may forget."""
        self.link.acknowledge(ack)
        self._gate.touch(client, time.monotonic())
        self._gate.sent(client, method)
        return self.link.session.inbox.cursor

    def take_batch(
        self,
        client: str,
        session: str,
        ack: int,
        frames: list[tuple[int, Frame | Invalid]],
        method: str,
    ) -> int:
        """A batch from the page (``method``: 'post' or 'get'): acknowledge the kernel's frames up
        to ``ack``, take the page's frames in order, each once, and dispatch them. Returns the
        inbox cursor, what the page may forget."""
        self.join(client, session)
        link = self.link
        link.acknowledge(ack)
        for frame in link.receive(frames):
            self.rpc.handle(frame)
        self._gate.touch(client, time.monotonic())
        self._gate.sent(client, method)
        return link.session.inbox.cursor

    async def carry(self, cursor: int, limit: int | None = None) -> list[Entry]:
        """The frames to carry back in the answer to a page's ``POST /messages``: those after the
        page's ``cursor`` that no stream or poll handed out (up to ``limit`` bytes, default
        ``poll_bytes``), else the first sent within ``poll_linger`` seconds (a handler's result,
        the kernel's next call). See protocol/delivery.py for which way takes which frame.
        """
        link = self.link
        session = link.session
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.poll_linger
        entries = link.post_share(link.entries_after(cursor))
        after = link.delivery.post_after(cursor)
        while not entries:
            waited = await link.wait_to_carry(session, after, deadline - loop.time())
            if not waited:
                return []  # the linger passed, or the session is over
            after = waited[-1].seq
            entries = link.post_share(waited)
        if session is not link.session:
            return []
        entries = first_entries(entries, self.options.poll_bytes if limit is None else limit)
        link.handed_out(entries, by_post=True)  # before any await: no stream takes them too
        return entries

    def release(self, client: str) -> bool:
        """The page ``client`` goes away: another may take over at once."""
        return self._gate.release(client)

    def status(self) -> dict[str, Any]:
        """What ``GET /status`` answers."""
        now = time.monotonic()
        link = self.link
        outbox = link.session.outbox
        live = self._gate.is_live(now)
        return {
            'connected': live,
            'client': self._gate.current,
            'transport': self._gate.transport if live else None,
            'send_method': self._gate.send_method if live else None,
            'session': link.session.id,
            'sent': outbox.last_seq,
            'acked': outbox.acked,
            'received': link.session.inbox.cursor,
            'outbox': {'messages': len(outbox), 'bytes': outbox.bytes},
            'pending_calls': self.rpc.pending,
            'channels': [
                {'key': channel.key, 'name': channel.name, 'open': channel.is_open}
                for channel in self._listed()
            ],
            'uptime': round(now - self._started_at, 3),
        }

    def client_options(self) -> dict[str, Any]:
        """The page client's options that follow the server's (``token`` aside)."""
        return client_options(self.options)


def endpoint_of(owner: HasEndpoint | Endpoint) -> Endpoint:
    """The endpoint of ``owner`` (a server), or ``owner`` itself."""
    return owner if isinstance(owner, Endpoint) else owner.endpoint
