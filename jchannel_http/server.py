"""The kernel server, a facade: it listens (the aiohttp runner of http/), opens the tunnel, shows
the notebook output, and hands channels, the page client and its session to kernel/endpoint.py."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from .errors import ListenError, StateError
from .http.app import PROTOCOL_LOG, make_app
from .http.connections import ConnectionGuard, GuardedRunner, runner_options
from .kernel.channel import Channel
from .kernel.endpoint import Endpoint
from .kernel.link import Link
from .kernel.loops import TransportThread, block_on, call_on, cross, running_loop
from .kernel.rpc import Rpc
from .kernel.transfers import StreamHub
from .notebook import cell_log
from .notebook.frontend import NotebookOutput, in_notebook
from .options import Options, client_options
from .protocol.clients import Admission, ClientGate
from .protocol.session import Entry
from .tunnels import Launcher, close_tunnel, open_tunnel
from .tunnels import resolve as resolve_tunnel

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11 on

log = logging.getLogger('jchannel_http')

T = TypeVar('T')

_WILDCARDS = {'0.0.0.0': '127.0.0.1', '::': '::1', '': '127.0.0.1'}


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

    def __init__(
        self,
        host: str = '127.0.0.1',
        port: int = 0,
        url: str | None = None,
        heartbeat: float = 15,
        tunnel: str | Launcher | None = None,
        token: str | None = None,
        **options: Any,
    ) -> None:
        if tunnel is not None and url is not None:
            raise ValueError(
                'give url= or tunnel=, not both: a tunnel decides the address the browser uses'
            )
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError('token must be a non-empty string')
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError('port must be an integer from 0 (any free port) to 65535')
        self.options = Options.from_kwargs(heartbeat=heartbeat, **options)
        self.tunnel: Launcher | None = resolve_tunnel(
            tunnel, self.options.tunnel_timeout, self.options.cloudflared_path
        )
        """The tunnel launcher in use (``tunnel=``), or None."""
        self._tunnel_open = False
        self.host = host
        self.port = port
        self._port_asked = port
        self._url_given = url.rstrip('/') if url else None
        self._url = self._url_given
        self.token = token or secrets.token_urlsafe(32)
        self.connections = ConnectionGuard(self.options)
        """Bounds on the TCP connections (see ``http/connections.py``)."""
        self.endpoint = Endpoint(lambda: self.url, self.options)
        """The kernel's end of the conversation: channels, the page client, its session."""
        self.endpoint.on_page_wanted = self._show_bootstrap
        self.endpoint.on_page_admitted = self._settle_bootstrap
        self._runner: web.AppRunner | None = None
        self._thread: TransportThread | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._stopped = False
        self._notebook: NotebookOutput | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Start listening; the task completes when the server accepts connections."""
        return asyncio.create_task(self._start())

    def stop(self) -> asyncio.Task[None]:
        """Stop: waiting calls fail with StateError, streams end, the port is released.

        Called on the transport's thread (in a ``@background`` handler), the stop runs on the
        loop that started the server, once that loop is free."""
        caller = self.endpoint.handler_loop
        if self.endpoint.on_transport_thread() and caller not in (None, running_loop()):
            assert caller is not None
            return asyncio.create_task(cross(caller, self._stop()))
        return asyncio.create_task(self._stop())

    async def __aenter__(self) -> Self:
        await self._start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stop()

    async def _start(self) -> None:
        if self._runner is not None:
            return  # already listening: as jupyter-jchannel, starting again does nothing
        if self._stopped:  # started again after stop(): a fresh life with the same token
            self._stopped = False
            self.port = self._port_asked
            self._url = self._url_given
            self.connections = ConnectionGuard(self.options)
            self._notebook = None
        caller = asyncio.get_running_loop()
        if self.options.transport_thread:
            self._thread = TransportThread()
            transport = self._thread.start()
        else:
            transport = caller
        self.endpoint.transport_loop = transport
        self.endpoint.handler_loop = caller
        try:
            await cross(transport, self._listen())
        except BaseException:
            self._end_transport()
            raise
        if self.tunnel is not None:  # on the caller's loop, as the notebook's own calls are
            try:
                self._url = await open_tunnel(self.tunnel, self.port)
            except BaseException:
                self._stopped = True  # start() may be tried again
                self.endpoint.failed()
                try:
                    await cross(transport, self._close_listener())
                finally:
                    self._runner = None
                    self._end_transport()
                raise
            self._tunnel_open = True
        await cross(transport, _run(self.endpoint.serving))
        self._announce()

    async def _listen(self) -> None:
        """On the transport's loop: a fresh endpoint life, and the listening socket."""
        self.endpoint.begin(self.options)
        runner = GuardedRunner(
            make_app(self.endpoint, self.token, self.connections),
            self.connections,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=self.options.shutdown_timeout,
            logger=PROTOCOL_LOG,
            **runner_options(self.options),
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            self._stopped = True  # start() may be tried again
            self.endpoint.failed()
            raise ListenError(self.host, self.port, exc) from exc
        self._runner = runner
        self.endpoint.listening()
        self.connections.start()
        self.port = runner.addresses[0][1]

    async def _close_listener(self) -> None:
        """On the transport's loop: stop the connection bounds and the runner."""
        try:
            await self.connections.stop()
        finally:
            if self._runner is not None:
                await self._runner.cleanup()

    def _end_transport(self) -> None:
        """Stop the transport's thread (if it has one); calls made now fail as after stop."""
        self.endpoint.transport_loop = None
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()

    def _announce(self) -> None:
        if in_notebook():
            cell_log.install(log)  # handler failures show in the notebook, not only the console
            self._notebook = NotebookOutput(self.url, self.token, self.client_options())
            self._notebook.show()
            return
        line = f'open {self.page_url} in a browser to connect a page'
        if log.hasHandlers():
            log.info(line)  # the log's format names the logger: the line does not repeat it
        else:
            print(f'jchannel_http: {line}', file=sys.stderr)

    def _show_bootstrap(self) -> bool:
        """A call found no page: in a notebook, show the bootstrap in the running cell again
        (and say so)."""
        if self._notebook is None:
            return False
        self._notebook.show()
        return True

    def _settle_bootstrap(self) -> None:
        """A page came in: the notebook's bootstrap output says so."""
        if self._notebook is not None and self._notebook.pending:
            self._notebook.settle(f'jchannel_http: connected to {self.url}')

    async def _stop(self) -> None:
        if self._stopped or self._runner is None:
            return
        self._stopped = True
        # Shielded: a handler method that stops the server is cancelled with the other calls
        # the page made, and the stop goes on to its end all the same (thread, port, tunnel).
        self._stopping = asyncio.ensure_future(self._shut_down())
        await asyncio.shield(self._stopping)

    async def _shut_down(self) -> None:
        transport = self.endpoint.transport_loop or asyncio.get_running_loop()
        try:
            await cross(transport, self.endpoint.stop())
            if self._notebook is not None:
                self._notebook.close(f'jchannel_http: the server at {self.url} was stopped')
            await cross(transport, self._close_listener())
        finally:
            self._runner = None
            self._end_transport()
            if self._tunnel_open and self.tunnel is not None:
                self._tunnel_open = False
                await close_tunnel(self.tunnel)

    @property
    def running(self) -> bool:
        """Whether the server accepts connections."""
        return self._runner is not None and not self._stopped

    # -- options that jupyter-jchannel's Server has as attributes --------------------------

    @property
    def max_msg_size(self) -> int:
        """jupyter-jchannel's name of ``max_body``: the largest request body accepted. Set it before ``start()``."""
        return self.options.max_body

    @max_msg_size.setter
    def max_msg_size(self, value: int) -> None:
        self.options = dataclasses.replace(self.options, max_body=value)

    @property
    def keepalive_timeout(self) -> float:
        """Seconds an idle keep-alive connection stays open. Set it before ``start()``."""
        return self.options.keepalive_timeout

    @keepalive_timeout.setter
    def keepalive_timeout(self, value: float) -> None:
        self.options = dataclasses.replace(self.options, keepalive_timeout=value)

    @property
    def shutdown_timeout(self) -> float:
        """Seconds ``stop()`` lets requests being handled finish. Set it before ``start()``."""
        return self.options.shutdown_timeout

    @shutdown_timeout.setter
    def shutdown_timeout(self, value: float) -> None:
        self.options = dataclasses.replace(self.options, shutdown_timeout=value)

    @property
    def send_timeout(self) -> float | None:
        """Accepted for jupyter-jchannel compatibility; no effect over HTTP. Set it before ``start()``."""
        return self.options.send_timeout

    @send_timeout.setter
    def send_timeout(self, value: float | None) -> None:
        self.options = dataclasses.replace(self.options, send_timeout=value)

    @property
    def receive_timeout(self) -> float | None:
        """Accepted for jupyter-jchannel compatibility; no effect over HTTP. Set it before ``start()``."""
        return self.options.receive_timeout

    @receive_timeout.setter
    def receive_timeout(self, value: float | None) -> None:
        self.options = dataclasses.replace(self.options, receive_timeout=value)

    @property
    def high_water_mark(self) -> int:
        """Accepted for jupyter-jchannel compatibility; no effect over HTTP. Set it before ``start()``."""
        return self.options.high_water_mark

    @high_water_mark.setter
    def high_water_mark(self, value: int) -> None:
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
        return client_options(self.options)

    # -- channels ----------------------------------------------------------------------------

    async def open(
        self,
        code: str,
        timeout: float | None = 3,
        name: str | None = None,
        deadline: float | None = None,
    ) -> Channel:
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
        channel = self.endpoint.channel(key)
        return channel if isinstance(channel, Channel) else None

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
        loop = self.endpoint.transport_loop
        if self.running and loop is not None:
            call_on(loop, self.endpoint.stop_client)

    # -- the kernel endpoint's state, as the server's attributes ---------------------------
    # (they live on the transport's loop: use them there, or with transport_thread=False)

    @property
    def link(self) -> Link:
        """The current conversation with the page."""
        return self.endpoint.link

    @property
    def rpc(self) -> Rpc:
        """Kernel-side call bookkeeping."""
        return self.endpoint.rpc

    @property
    def streams(self) -> StreamHub:
        """The byte streams of the current session."""
        return self.endpoint.streams

    @property
    def gate(self) -> ClientGate:
        """Which page client is current."""
        return self.endpoint.gate

    def admit(self, client: str) -> Admission:
        """Let ``client`` in (ClientConflict while another is live); renew on takeover."""
        return self.endpoint.admit(client)

    def renew(self, reason: str) -> None:
        """Start a new session: kernel calls waiting for the old page fail with StateError."""
        self.endpoint.renew(reason)

    def resume(self, client: str, session: str | None, cursor: int) -> list[Entry]:
        """Where the stream of ``client`` starts: the frames after ``cursor`` (see
        ``Endpoint.resume``)."""
        return self.endpoint.resume(client, session, cursor)

    def status(self) -> dict[str, Any]:
        """What ``GET /status`` answers (read on the transport's thread)."""
        loop = self.endpoint.transport_loop
        if loop is None or running_loop() is loop:
            return self.endpoint.status()
        return block_on(loop, _run(self.endpoint.status))


async def _run(function: Callable[[], T]) -> T:
    """``function()`` as a coroutine, to run it on another loop."""
    return function()
