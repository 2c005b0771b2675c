"""A stand-in for Google Colab's proxy of kernel ports, for the tests (Colab is not reachable here).

In Colab, ``google.colab.kernel.proxyPort(<port>)`` (asked of the page through
``google.colab.output.eval_js``) gives the tab an https address whose requests a service worker
and Google's front end pass to ``127.0.0.1:<port>`` in the VM. This stand-in listens on a free
loopback port of its own and does to requests and answers what public reports say that path does:

- Any method but GET, HEAD and OPTIONS is answered ``500`` with the text ``Not allowed`` and never
  reaches the kernel server: googlecolab/colabtools#3925 (open), and #4323 for the same refusal
  through ``serve_kernel_port_as_iframe``.
- An answer of the kernel server with a 4xx status reaches the page as an empty ``500``: in
  colabtools#3308 an upstream ``401`` arrived as an empty ``500``. Other statuses pass unchanged.
- ``authuser=0`` is appended to every query string (``?authuser=0`` when there was none):
  colabtools#3308 shows it in the forwarded URL.
- No WebSocket: colabtools#2529 (a known, unfixed limitation). The stand-in drops the ``Upgrade``
  and ``Connection`` headers, so the kernel server sees a plain GET (and answers it ``426``, which
  the page then sees as an empty ``500``, by the rule above).
- Large downloads are limited: colabtools#4270. The size is not published, so the ``capped``
  variant cuts every answer after ``cap`` bytes of body (the connection is reset, as a failed
  transfer looks to a browser), with ``cap`` chosen by the test.
- Whether the service worker streams answers is not published (shared/notes/proxies.md: "not
  known; assume it may buffer"): the ``buffered`` variant holds each answer until it is complete,
  the default streams it.

``proxy_port(port)`` is what the stand-in ``eval_js`` (tests/fixtures/google/colab/output.py)
answers for ``google.colab.kernel.proxyPort(<port>)``: the proxy's address, now leading to ``port``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
from aiohttp import web
from yarl import URL

ALLOWED_METHODS = frozenset({'GET', 'HEAD', 'OPTIONS'})
DROPPED = frozenset(
    {
        'connection',
        'keep-alive',
        'proxy-connection',
        'te',
        'trailer',
        'upgrade',
        'transfer-encoding',
        'content-length',
        'host',
    }
)
VARIANTS = ('streaming', 'buffered', 'capped', 'buffered-capped')


class _Cut(Exception):
    """An answer was cut at the cap."""


def _forwardable(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower() not in DROPPED}


def with_authuser(path_qs: str) -> str:
    """``path_qs`` with ``authuser=0`` appended to its query, as Colab's service worker does."""
    return f'{path_qs}&authuser=0' if '?' in path_qs else f'{path_qs}?authuser=0'


class ColabProxy:
    """Colab's kernel-port proxy, emulated on a free loopback port (see the module docstring).

    ``variant`` is ``'streaming'``, ``'buffered'`` (each answer held until complete),
    ``'capped'`` (each answer cut after ``cap`` bytes) or ``'buffered-capped'`` (both).
    """

    def __init__(self, variant: str = 'streaming', cap: int = 256 * 1024) -> None:
        if variant not in VARIANTS:
            raise ValueError(f'variant must be one of {VARIANTS}')
        self.variant = variant
        self.buffered = variant.startswith('buffered')
        self.cap: int | None = cap if variant.endswith('capped') else None
        self.target: int | None = None
        """The kernel port that proxyPort() named last; None until then."""
        self.port = 0
        self.requests: list[tuple[str, str]] = []
        """(method, path with query as forwarded) of every request received."""
        self.refused = 0
        """Requests answered 500 "Not allowed" for their method."""
        self.hidden = 0
        """Upstream 4xx answers turned into an empty 500."""
        self.cut = 0
        """Answers cut at the cap."""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._open: set[asyncio.Transport] = set()

    async def start(self) -> ColabProxy:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route('*', '/{tail:.*}', self._handle)
        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, '127.0.0.1', 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    @property
    def url(self) -> str:
        """The address pages use, as proxyPort() gives it (here without the trailing slash)."""
        return f'http://127.0.0.1:{self.port}'

    def proxy_port(self, port: int) -> str:
        """What ``google.colab.kernel.proxyPort(port)`` answers: this proxy, now to ``port``."""
        self.target = int(port)
        return self.url + '/'

    def cut_connections(self) -> int:
        """Reset every connection a request is open on (a network cut); return how many."""
        cut = list(self._open)
        for transport in cut:
            transport.abort()
        return len(cut)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            self._open.add(request.transport)
        try:
            return await self._answer(request)
        finally:
            self._open.discard(request.transport)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        forwarded = with_authuser(request.raw_path)
        self.requests.append((request.method, forwarded))
        if request.method not in ALLOWED_METHODS:
            self.refused += 1
            return web.Response(status=500, text='Not allowed')
        if self.target is None:
            return web.Response(status=502, text='no port proxied yet')
        try:
            async with self._session.request(
                request.method,
                URL(f'http://127.0.0.1:{self.target}{forwarded}', encoded=True),
                headers=_forwardable(request.headers),
                allow_redirects=False,
            ) as upstream:
                if 400 <= upstream.status < 500:
                    self.hidden += 1
                    await upstream.read()
                    return web.Response(status=500)
                return await self._relay(request, upstream)
        except aiohttp.ClientConnectionError:
            return web.Response(status=502, text='Bad Gateway')

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=upstream.status, headers=_forwardable(upstream.headers)
        )
        try:
            await self._copy(request, upstream, response)
        except (_Cut, ConnectionError):
            pass  # the page sees a reset connection
        return response

    async def _copy(
        self, request: web.Request, upstream: aiohttp.ClientResponse, response: web.StreamResponse
    ) -> None:
        if self.buffered:
            body = await upstream.read()
            await response.prepare(request)
            await self._write(request, response, body, 0)
        else:
            await response.prepare(request)
            written = 0
            async for chunk in upstream.content.iter_any():
                written = await self._write(request, response, chunk, written)
        await response.write_eof()

    async def _write(
        self, request: web.Request, response: web.StreamResponse, data: bytes, written: int
    ) -> int:
        """Write ``data`` after ``written`` bytes; at the cap, reset the connection and raise
        _Cut."""
        if self.cap is not None and written + len(data) > self.cap:
            await response.write(data[: self.cap - written])
            self.cut += 1
            await asyncio.sleep(0.05)  # let the bytes leave before the reset
            if request.transport is not None:
                request.transport.abort()
            raise _Cut()
        await response.write(data)
        return written + len(data)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
