"""Intermediaries for the transport tests, each on a free loopback port and stopped by the test.

- ``HoldingProxy``: an HTTP proxy that holds every GET response until it ends (as cloudflared
  quick tunnels do with event streams) but streams the answers to other methods; which methods it
  holds can be changed while it runs.
- ``RetryingProxy``: a ``HoldingProxy`` that sends a held ``GET /poll`` upstream again, old
  cursor and all, when no answer came within a timeout (as nginx does with
  ``proxy_next_upstream timeout`` for idempotent requests, and as a browser does when the
  connection of a request it sent was cut before the answer).
- ``ChaosProxy``: a TCP proxy that cuts some connections at a random byte offset and delays data.
- ``CutProxy``: a TCP proxy whose connections the test cuts at will.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping

import aiohttp
from aiohttp import web
from typing_extensions import Self

HOP_BY_HOP = {'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
              'transfer-encoding', 'content-length', 'host'}


def _end_to_end(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower() not in HOP_BY_HOP}


class HoldingProxy:
    """Forwards to ``127.0.0.1:<target>``; an answer to a method in ``holding`` (GET by default)
    is passed on only once it is complete."""

    def __init__(self, target: int, port: int = 0, holding: tuple[str, ...] = ('GET',)) -> None:
        self.target = target
        self.port = port
        self.holding: set[str] = set(holding)
        """The methods whose answers are held; change it to switch the buffering on or off."""
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every request forwarded."""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> Self:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route('*', '/{tail:.*}', self._forward)
        self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(
            total=None, sock_read=None))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, '127.0.0.1', self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        self.requests.append((request.method, request.path))
        body = await request.read()
        async with self._session.request(
                request.method, f'http://127.0.0.1:{self.target}{request.path_qs}',
                headers=_end_to_end(request.headers), data=body or None,
                allow_redirects=False) as upstream:
            headers = _end_to_end(upstream.headers)
            if request.method in self.holding:
                return web.Response(status=upstream.status, headers=headers,
                                    body=await upstream.read())
            response = web.StreamResponse(status=upstream.status, headers=headers)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


class RetryingProxy(HoldingProxy):
    """Holds GET answers whole; a ``GET /poll`` not answered within ``retry_after`` seconds is
    dropped upstream (its connection closed) and sent again once, unchanged."""

    def __init__(self, target: int, port: int = 0, retry_after: float = 2.0) -> None:
        super().__init__(target, port)
        self.retry_after = retry_after
        self.retries = 0

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if request.method != 'GET' or not request.path.endswith('/poll'):
            return await super()._forward(request)
        assert self._session is not None
        self.requests.append((request.method, request.path))
        url = f'http://127.0.0.1:{self.target}{request.path_qs}'

        async def fetch() -> web.Response:
            assert self._session is not None
            async with self._session.get(url, headers=_end_to_end(request.headers)) as upstream:
                return web.Response(status=upstream.status, headers=_end_to_end(upstream.headers),
                                    body=await upstream.read())

        try:
            return await asyncio.wait_for(fetch(), self.retry_after)
        except asyncio.TimeoutError:
            self.retries += 1
            return await fetch()


class ChaosProxy:
    """A TCP proxy to ``127.0.0.1:<target>`` that misbehaves, reproducibly from ``seed``.

    Each connection is cut (both ways, with a reset) with probability ``cut_chance`` once
    a random number of bytes below ``max_offset`` has passed through it in either direction;
    each chunk of data is held for up to ``max_delay`` seconds with probability
    ``delay_chance``, and so is each new connection before it reaches the target. It starts
    calm (a page loads its script whole) until ``unleash()``.
    """

    def __init__(self, target: int, seed: int, port: int = 0, cut_chance: float = 1.0,
                 max_offset: int = 256 * 1024, delay_chance: float = 0.2,
                 max_delay: float = 0.03) -> None:
        self.target = target
        self.port = port
        self.seed = seed
        self.cut_chance = cut_chance
        self.max_offset = max_offset
        self.delay_chance = delay_chance
        self.max_delay = max_delay
        self.connections = 0
        self.cuts = 0
        self.calm = True
        self._random = random.Random(seed)
        self._server: asyncio.base_events.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()

    async def start(self) -> ChaosProxy:
        self._server = await asyncio.start_server(self._serve, '127.0.0.1', self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def unleash(self) -> None:
        """From now on misbehave; the connections opened while calm are cut at once."""
        self.calm = False
        for transport in list(self._transports):
            transport.abort()

    async def _delay(self) -> None:
        if not self.calm and self._random.random() < self.delay_chance:
            await asyncio.sleep(self._random.uniform(0, self.max_delay))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await self._delay()
        try:
            up_reader, up_writer = await asyncio.open_connection('127.0.0.1', self.target)
        except OSError:
            writer.transport.abort()
            return
        ends = (writer.transport, up_writer.transport)
        self._transports.update(ends)
        cut = not self.calm and self._random.random() < self.cut_chance
        budget = [self._random.randrange(self.max_offset) if cut else -1]
        try:
            await asyncio.gather(self._pipe(reader, up_writer, budget, ends),
                                 self._pipe(up_reader, writer, budget, ends))
        finally:
            self._transports.difference_update(ends)
            for transport in ends:
                transport.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    budget: list[int], ends: tuple) -> None:
        try:
            while data := await reader.read(16 * 1024):
                await self._delay()
                if budget[0] >= 0 and len(data) >= budget[0]:
                    writer.write(data[:budget[0]])
                    self.cuts += 1
                    for transport in ends:
                        transport.abort()
                    return
                if budget[0] >= 0:
                    budget[0] -= len(data)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, asyncio.CancelledError, RuntimeError):
            for transport in ends:
                transport.abort()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for transport in list(self._transports):
            transport.abort()
        if self._server is not None:
            await self._server.wait_closed()


class CutProxy:
    """A TCP proxy on a free loopback port whose connections the test can cut at will."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.cuts = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> CutProxy:
        self._server = await asyncio.start_server(self._serve, '127.0.0.1', 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection('127.0.0.1', self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}

    def cut(self) -> int:
        """Abort every open connection; return how many were cut."""
        writers = list(self._writers)
        for writer in writers:
            writer.transport.abort()
        self.cuts += 1
        return len(writers)

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
