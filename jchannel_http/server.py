"""The kernel server: lifecycle, channels, the current page client and its session."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import secrets
import sys
import time
from typing import Any, Callable

from aiohttp import web

from . import cell_log
from .channel import Channel
from .clients import Admission, ClientGate
from .connections import ConnectionGuard, GuardedRunner, runner_options
from .errors import ResyncError, StateError
from .frontend import NotebookOutput, in_notebook
from .frames import Request, Stop
from .link import Link
from .options import Options
from .rpc import Rpc, Unsent
from .tunnels import Launcher, close_tunnel, open_tunnel
from .tunnels import resolve as resolve_tunnel
from .transfers import StreamHub

log = logging.getLogger('jchannel_http')

_WILDCARDS = {'0.0.0.0': '127.0.0.1', '::': '::1', '': '127.0.0.1'}
_CHANNEL_KEY = re.compile(r'[1-9][0-9]{0,15}')  # ASCII digits only: int() takes others


def _browser_url(host: str, port: int) -> str:
    host = _WILDCARDS.get(host, host)
    if ':' in host:
        host = f'[{host}]'
    return f'http://{host}:{port}'


class Server:
    """A kernel server that one page client at a time connects to.

    ``url`` overrides the address the browser uses (it may carry a path prefix, for a proxy).
    ``tunnel`` makes one instead, once the server listens (a name, ``'auto'`` or a launcher: see
    ``jchannel_http.tunnels``); ``stop()`` ends it.
    ``token`` defaults to 32 random bytes. Other keyword arguments are the bounds of
    ``Options`` (``heartbeat``, ``outbox_messages``, ``max_body``, ...).

    A stopped server can be started again: it keeps its token and its channels (they open again
    in the page on their next call), listens on the same ``port`` if one was given (else on a
    new free port) and opens its tunnel again.
    """

    def __init__(self, host: str = '127.0.0.1', port: int = 0, url: str | None = None,
                 heartbeat: float = 15, tunnel: object = None, token: str | None = None,
                 **options: Any) -> None:
        if tunnel is not None and url is not None:
            raise ValueError('give url= or tunnel=, not both: a tunnel decides the address the '
                             'browser uses')
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError('token must be a non-empty string')
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError('port must be an integer from 0 (any free port) to 65535')
        self.options = Options.from_kwargs(heartbeat=heartbeat, **options)
        self.tunnel: Launcher | None = resolve_tunnel(tunnel, self.options.tunnel_timeout,
                                                      self.options.cloudflared_path)
        """The tunnel launcher in use (``tunnel=``), or None."""
        self._tunnel_open = False
        self.host = host
        self.port = port
        self._port_asked = port
        self._url_given = url.rstrip('/') if url else None
        self._url = self._url_given
        self.token = token or secrets.token_urlsafe(32)
        self._channels: dict[int, Channel] = {}
        self._names: dict[str, Channel] = {}
        self._link: Link | None = None
        self._rpc: Rpc | None = None
        self._streams: StreamHub | None = None
        self._gate = ClientGate(self.options.liveness)
        self.connections = ConnectionGuard(self.options)
        """Bounds on the TCP connections (see ``connections.py``)."""
        self._runner: web.AppRunner | None = None
        self._started_at = 0.0
        self._stopped = False
        self._notebook: NotebookOutput | None = None
        self._arrival = asyncio.Event()
        self._watchdog: asyncio.Task | None = None
        self._dismissing: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> asyncio.Task:
        """Start listening; the task completes when the server accepts connections."""
        return asyncio.create_task(self._start())

    def stop(self) -> asyncio.Task:
        """Stop: waiting calls fail with StateError, streams end, the port is released."""
        return asyncio.create_task(self._stop())

    async def __aenter__(self) -> 'Server':
        await self._start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stop()

    async def _start(self) -> None:
        from .http_app import PROTOCOL_LOG, make_app  # the HTTP adapter imports this module

        if self._runner is not None:
            return  # already listening: as jupyter-jchannel, starting again does nothing
        if self._stopped:  # started again after stop(): a fresh life with the same token
            self._stopped = False
            self.port = self._port_asked
            self._url = self._url_given
            self._gate = ClientGate(self.options.liveness)
            self.connections = ConnectionGuard(self.options)
            self._notebook = None
            for channel in self._channels.values():
                channel._open = False  # the page forgot it: the next call opens it again
        self._link = Link(self.options)
        self._streams = StreamHub(self.options, lambda: self._gate.is_live(time.monotonic()))
        self._rpc = Rpc(self._link, self._channels, self.options.debug, self._streams)
        runner = GuardedRunner(make_app(self), self.connections, access_log=None,
                               handler_cancellation=True,
                               shutdown_timeout=self.options.shutdown_timeout,
                               logger=PROTOCOL_LOG, **runner_options(self.options))
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            self._stopped = True  # start() may be tried again
            raise StateError(f'cannot listen on {self.host}:{self.port}: {exc.strerror}') from exc
        self._runner = runner
        self.connections.start()
        self.port = runner.addresses[0][1]
        if self.tunnel is not None:
            try:
                self._url = await open_tunnel(self.tunnel, self.port)
            except BaseException:
                self._runner = None
                self._stopped = True  # start() may be tried again
                await self.connections.stop()
                await runner.cleanup()
                raise
            self._tunnel_open = True
        self._started_at = time.monotonic()
        self._watchdog = asyncio.create_task(self._watch_page())
        self._announce()

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
            self._rpc.fail_all(StateError(
                'the page went away (it released the server, or was silent for '
                f'{self.options.liveness:g} s); the call may or may not have run in it'))
            log.info('failed %d call(s) sent to a page that went away', failed)

    def _announce(self) -> None:
        if in_notebook():
            cell_log.install(log)  # handler failures show in the notebook, not only the console
            self._notebook = NotebookOutput(self.url, self.token, self.client_options())
            self._notebook.show()
            return
        line = f'jchannel_http: open {self.page_url} in a browser to connect a page'
        if log.hasHandlers():
            log.info(line)
        else:
            print(line, file=sys.stderr)

    async def _stop(self) -> None:
        if self._stopped or self._runner is None:
            return
        self._stopped = True
        self._arrival.set()
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
            self._watchdog = None
        await self._dismiss_page()
        if self._notebook is not None:
            self._notebook.close(f'jchannel_http: the server at {self.url} was stopped')
        if self._link is not None:
            self._link.stop()
        if self._rpc is not None:
            self._rpc.fail_all(StateError('the server was stopped'))
            await self._rpc.stop()
        if self._streams is not None:
            await self._streams.stop()
        try:
            await self.connections.stop()
            if self._runner is not None:
                await self._runner.cleanup()
        finally:
            self._runner = None
            if self._tunnel_open and self.tunnel is not None:
                self._tunnel_open = False
                await close_tunnel(self.tunnel)

    async def _dismiss_page(self) -> None:
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

    @property
    def running(self) -> bool:
        """Whether the server accepts connections."""
        return self._runner is not None and not self._stopped

    # -- options that jupyter-jchannel's Server has as attributes --------------------------

    @property
    def max_msg_size(self) -> Any:
        """jupyter-jchannel's name of ``max_body``: the largest request body accepted. Set it before ``start()``."""
        return self.options.max_body

    @max_msg_size.setter
    def max_msg_size(self, value: Any) -> None:
        self.options = dataclasses.replace(self.options, max_body=value)

    @property
    def keepalive_timeout(self) -> Any:
        """Seconds an idle keep-alive connection stays open. Set it before ``start()``."""
        return self.options.keepalive_timeout

    @keepalive_timeout.setter
    def keepalive_timeout(self, value: Any) -> None:
        self.options = dataclasses.replace(self.options, keepalive_timeout=value)

    @property
    def shutdown_timeout(self) -> Any:
        """Seconds ``stop()`` lets requests being handled finish. Set it before ``start()``."""
        return self.options.shutdown_timeout

    @shutdown_timeout.setter
    def shutdown_timeout(self, value: Any) -> None:
        self.options = dataclasses.replace(self.options, shutdown_timeout=value)

    @property
    def send_timeout(self) -> Any:
        """Accepted for jupyter-jchannel compatibility; no effect over HTTP. Set it before ``start()``."""
        return self.options.send_timeout

    @send_timeout.setter
    def send_timeout(self, value: Any) -> None:
        self.options = dataclasses.replace(self.options, send_timeout=value)

    @property
    def receive_timeout(self) -> Any:
        """Accepted for jupyter-jchannel compatibility; no effect over HTTP. Set it before ``start()``."""
        return self.options.receive_timeout

    @receive_timeout.setter
    def receive_timeout(self, value: Any) -> None:
        self.options = dataclasses.replace(self.options, receive_timeout=value)

    @property
    def high_water_mark(self) -> Any:
        """Accepted for jupyter-jchannel compatibility; no effect over HTTP. Set it before ``start()``."""
        return self.options.high_water_mark

    @high_water_mark.setter
    def high_water_mark(self, value: Any) -> None:
        self.options = dataclasses.replace(self.options, high_water_mark=value)

    # -- addresses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL the browser uses (no trailing slash)."""
        return self._url or _browser_url(self.host, self.port)

    @property
    def page_url(self) -> str:
        """A page, served by this server and carrying the token, that becomes the client."""
        return f'{self.url}/page?token={self.token}'

    def client_options(self) -> dict[str, Any]:
        """The page client's options that follow the server's (``token`` aside)."""
        options: dict[str, Any] = {'firstEventDeadline': self.options.first_event_deadline,
                                   'upgradeInterval': self.options.upgrade_interval,
                                   'maxUrl': self.options.max_url}
        if self.options.send_method is not None:
            options['sendMethod'] = self.options.send_method
        if self.options.transport is not None:
            options['transport'] = self.options.transport
        return options

    # -- channels ----------------------------------------------------------------------------

    async def open(self, code: str, timeout: float | None = 3, name: str | None = None,
                   deadline: float | None = None) -> Channel:
        """Create a channel whose page side ``code`` sets up, open it and return it.

        ``timeout`` bounds the wait for a connected page; ``deadline``, if given, the whole
        opening (see ``Channel.call``).
        """
        channel = Channel(self, code, name)
        try:
            await channel.open(timeout, deadline=deadline)
        except BaseException:
            channel.destroy()
            raise
        return channel

    def channel(self, key: str) -> Channel | None:
        """The channel named ``key``, or whose numeric key is ``key``."""
        if key in self._names:
            return self._names[key]
        return self._channels.get(int(key)) if _CHANNEL_KEY.fullmatch(key) else None

    def _register(self, channel: Channel) -> None:
        if self._channels.get(channel.key) is channel:
            return
        if channel.name is not None:
            if channel.name in self._names:
                raise ValueError(f'a channel named {channel.name!r} exists already')
            self._names[channel.name] = channel
        self._channels[channel.key] = channel

    def _unregister(self, channel: Channel) -> None:
        self._channels.pop(channel.key, None)
        if channel.name is not None:
            self._names.pop(channel.name, None)

    async def _await_page(self, timeout: float | None, what: str,
                          end: float | None = None) -> None:
        """Return once a page is connected, waiting at most ``timeout`` seconds for one (and
        not beyond the loop time ``end``, a call's deadline).

        In a notebook, a missing page is brought back through the running cell's output: the
        server shows the bootstrap there again (after a reload, the tab has no client), and the
        wait lasts at least ``client_load_timeout`` so that the tab can load it.
        """
        if self._gate.is_live(time.monotonic()):
            return
        if self._notebook is not None and not self._stopped:
            self._notebook.show()
            if timeout is not None:  # the tab needs time to load the client it just got
                timeout = max(timeout, self.options.client_load_timeout)
        loop = asyncio.get_running_loop()
        bounds = [bound for bound in (None if timeout is None else loop.time() + timeout, end)
                  if bound is not None]
        until = min(bounds) if bounds else None
        while True:
            self._arrival.clear()
            if self._stopped or self._runner is None:
                raise StateError('the server was stopped' if self._stopped
                                 else 'the server is not running: await server.start() first')
            if self._gate.is_live(time.monotonic()):
                return
            remaining = None if until is None else until - loop.time()
            if remaining is not None and remaining <= 0:
                waited = 'until the deadline' if end is not None and until == end \
                    else f'{timeout} s'
                raise StateError(
                    f'no page is connected to {self.url} (waited {waited} for {what}): run '
                    'start() in a notebook, or open server.page_url in a browser')
            try:
                await asyncio.wait_for(self._arrival.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def _request(self, make: Callable[[int], Request], timeout: float | None,
                       what: str, end: float | None = None) -> Any:
        """Send a request to the connected page and return its answer.

        ``timeout`` bounds the wait for room in the outbox; ``end`` (a loop time, the call's
        deadline) the whole request. Without ``end`` the answer is awaited as long as the page
        that got the request stays (``_watch_page`` fails it when that page goes away).
        """
        if self._rpc is None or self._stopped:
            raise StateError('the server is not running: await server.start() first'
                             if not self._stopped else 'the server was stopped')
        try:
            return await self._rpc.request(make, timeout, end)
        except Unsent:
            if not self._gate.is_live(time.monotonic()):
                raise StateError(
                    f'no page is connected to {self.url} (waited {timeout} s for {what}): run '
                    'start() in a notebook, or open server.page_url in a browser'
                ) from None
            raise TimeoutError(f'the page did not take {what} within {timeout} s: the outbox '
                               'stayed full (the page does not acknowledge)') from None
        except asyncio.TimeoutError:
            raise TimeoutError(f'the page did not answer {what} by its deadline') from None

    # -- what jupyter-jchannel's Server offers as well --------------------------------------

    def start_client(self) -> None:
        """Bring a page client in: in a notebook, show the bootstrap in the running cell's
        output; elsewhere, log which address to open. (Calls do this by themselves when no
        page is connected.)"""
        if not self.running:
            raise StateError('the server is not running: await server.start() first')
        if self._notebook is not None:
            self._notebook.show()
        else:
            self._announce()

    def stop_client(self) -> None:
        """Stop the connected page's client (the server keeps running; the next call brings
        a client back in a notebook). Does nothing when no page is connected."""
        if self.running and (self._dismissing is None or self._dismissing.done()):
            self._dismissing = asyncio.ensure_future(self._dismiss_page())

    # -- the page client (used by the HTTP adapter) ------------------------------------------

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

    def admit(self, client: str) -> Admission:
        """Let ``client`` in (ClientConflict while another is live); renew on takeover."""
        admission = self._gate.admit(client, time.monotonic())
        if admission is Admission.TAKEOVER:
            self.renew('another page took over (a reload or a new tab)')
        self._arrival.set()
        if self._notebook is not None and self._notebook.pending:
            self._notebook.settle(f'jchannel_http: connected to {self.url}')
        return admission

    def renew(self, reason: str) -> None:
        """Start a new session: kernel calls waiting for the old page fail with StateError."""
        log.info('new session: %s', reason)
        self.link.renew()
        if self._streams is not None:
            self._streams.reset(reason)
        self.rpc.fail_all(StateError(f'{reason}; the call may or may not have run in the old page'))

    def resume(self, client: str, session: str | None, cursor: int) -> list:
        """Where the stream of ``client`` starts: the frames after ``cursor``.

        Raises ResyncError (HTTP 410) when ``session`` is not the current one or ``cursor``
        cannot be served; the page then starts over with no session.
        """
        current = self.link.session
        if session is None:
            if current.inbox.cursor > 0 or current.outbox.acked > 0:
                self.renew('the page started over')
        elif session != current.id:
            raise ResyncError('the session is over (the kernel server was restarted or another '
                              'page took over); start a new one')
        elif cursor < current.outbox.acked and client == self._gate.current:
            # The session's own page acknowledged more than this: the request is an old one
            # sent again (a browser retries a request whose connection was cut, cursor and all),
            # not a page that lost its state. Serve it from what the page has not acknowledged.
            log.debug('request from cursor %d after frames up to %d were acknowledged: a replay',
                      cursor, current.outbox.acked)
            cursor = current.outbox.acked
        try:
            return self.link.resume(cursor)  # an acknowledgement: it may make room
        except ResyncError as exc:
            self.renew(f'the page asked for a resync: {exc}')
            raise

    def status(self) -> dict[str, Any]:
        """What ``GET /status`` answers."""
        now = time.monotonic()
        link = self.link
        outbox = link.session.outbox
        return {
            'connected': self._gate.is_live(now),
            'client': self._gate.current,
            'transport': self._gate.transport if self._gate.is_live(now) else None,
            'send_method': self._gate.send_method if self._gate.is_live(now) else None,
            'session': link.session.id,
            'sent': outbox.last_seq,
            'acked': outbox.acked,
            'received': link.session.inbox.cursor,
            'outbox': {'messages': len(outbox), 'bytes': outbox.bytes},
            'pending_calls': self.rpc.pending,
            'channels': [
                {'key': channel.key, 'name': channel.name, 'open': channel.is_open}
                for channel in self._channels.values()
            ],
            'uptime': round(now - self._started_at, 3),
        }
