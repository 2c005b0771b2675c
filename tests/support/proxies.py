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
- ``FaultProxy``: an HTTP proxy that, reproducibly from a seed, drops requests before they reach
  the server, drops answers after the server acted, sends requests twice, delays both ways, cuts
  request bodies and answers (event streams too) part way.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections.abc import Mapping
from typing import ClassVar

import aiohttp
from aiohttp import web
from typing_extensions import Self

HOP_BY_HOP = {
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
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)
        )
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
            request.method,
            f'http://127.0.0.1:{self.target}{request.path_qs}',
            headers=_end_to_end(request.headers),
            data=body or None,
            allow_redirects=False,
        ) as upstream:
            headers = _end_to_end(upstream.headers)
            if request.method in self.holding:
                return web.Response(
                    status=upstream.status, headers=headers, body=await upstream.read()
                )
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
                return web.Response(
                    status=upstream.status,
                    headers=_end_to_end(upstream.headers),
                    body=await upstream.read(),
                )

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

    def __init__(
        self,
        target: int,
        seed: int,
        port: int = 0,
        cut_chance: float = 1.0,
        max_offset: int = 256 * 1024,
        delay_chance: float = 0.2,
        max_delay: float = 0.03,
    ) -> None:
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
            await asyncio.gather(
                self._pipe(reader, up_writer, budget, ends),
                self._pipe(up_reader, writer, budget, ends),
            )
        finally:
            self._transports.difference_update(ends)
            for transport in ends:
                transport.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        budget: list[int],
        ends: tuple,
    ) -> None:
        try:
            while data := await reader.read(16 * 1024):
                await self._delay()
                if budget[0] >= 0 and len(data) >= budget[0]:
                    writer.write(data[: budget[0]])
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


class FaultProxy(HoldingProxy):
    """Forwards to ``127.0.0.1:<target>``, streaming every answer, and misbehaves on a share of
    the requests, each fault drawn from ``random.Random(seed)`` in the order requests arrive.

    Faults (``rates`` gives each one's chance per request; at most one per request):

    - ``drop_request``: the request never reaches the server; the client's connection is reset;
    - ``cut_request``: the server gets the head and part of the body, then a reset, and the
      client's connection is reset;
    - ``drop_response``: the server answers in full, the client's connection is reset instead;
    - ``duplicate``: the request reaches the server twice, one after the other (as a retry by a
      proxy would); the client gets the second answer (an event stream is not sent twice);
    - ``cut_response``: the answer passes up to a random byte offset, then a reset (event
      streams are cut part way, after the hello or before it);
    - ``replay``: the request passes, and reaches the server once more up to ``max_replay``
      seconds later, after newer ones (a stale copy, as a network that held it would deliver);
      the copy's answer is read for a moment and thrown away;

    and, independently, each request and each answer is held up to ``max_delay`` seconds with
    chance ``delay``. ``counts`` tells how often each fault happened.
    """

    RATES: ClassVar[dict[str, float]] = {
        'drop_request': 0.05,
        'cut_request': 0.04,
        'drop_response': 0.05,
        'duplicate': 0.05,
        'cut_response': 0.06,
        'replay': 0.05,
    }

    def __init__(
        self,
        target: int,
        seed: int,
        port: int = 0,
        rates: dict[str, float] | None = None,
        delay: float = 0.15,
        max_delay: float = 0.03,
        max_cut: int = 16 * 1024,
        max_replay: float = 0.5,
    ) -> None:
        super().__init__(target, port, holding=())
        self.seed = seed
        self.rates = dict(self.RATES if rates is None else rates)
        unknown = set(self.rates) - set(self.RATES)
        if unknown:
            raise ValueError(f'unknown faults {sorted(unknown)}; known: {sorted(self.RATES)}')
        self.delay = delay
        self.max_delay = max_delay
        self.max_cut = max_cut
        self.max_replay = max_replay
        self._replays: set[asyncio.Future[None]] = set()
        self.calm = False
        """While true, every request passes untouched."""
        self.counts: collections.Counter[str] = collections.Counter()
        self.log: list[tuple[float, str, str, str | None]] = []
        """(time.monotonic(), method, path and query, fault) of each request, as it arrived."""
        self._random = random.Random(seed)

    def _draw(self) -> tuple[str | None, int, float, float]:
        """The fault for the next request, a cut offset, and its two delays."""
        roll, fault = self._random.random(), None
        for name, rate in self.rates.items():
            if roll < rate:
                fault = name
                break
            roll -= rate
        cut = self._random.randrange(self.max_cut)
        delays = [
            self._random.uniform(0, self.max_delay) if self._random.random() < self.delay else 0.0
            for _ in range(2)
        ]
        return fault, cut, delays[0], delays[1]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        self.requests.append((request.method, request.path))
        fault, cut, before, after = (None, 0, 0.0, 0.0) if self.calm else self._draw()
        self.log.append((time.monotonic(), request.method, request.path_qs, fault))
        streaming = request.path.endswith('/events')
        if fault == 'duplicate' and streaming:
            fault = None
        body = await request.read()
        if before:
            await asyncio.sleep(before)
        if fault is not None:
            self.counts[fault] += 1
        if fault == 'drop_request':
            return self._reset(request)
        if fault == 'cut_request':
            await self._send_part(request, body, cut)
            return self._reset(request)
        url = f'http://127.0.0.1:{self.target}{request.path_qs}'
        headers = _end_to_end(request.headers)
        if fault == 'replay':
            replay = asyncio.ensure_future(
                self._replay(
                    request.method, url, headers, body, self._random.uniform(0, self.max_replay)
                )
            )
            self._replays.add(replay)
            replay.add_done_callback(self._replays.discard)
        try:
            if fault == 'duplicate':
                async with self._session.request(
                    request.method, url, headers=headers, data=body or None, allow_redirects=False
                ) as first:
                    await first.read()
            async with self._session.request(
                request.method, url, headers=headers, data=body or None, allow_redirects=False
            ) as upstream:
                if fault == 'drop_response':
                    await upstream.read()
                    return self._reset(request)
                response = web.StreamResponse(
                    status=upstream.status, headers=_end_to_end(upstream.headers)
                )
                if after:
                    await asyncio.sleep(after)
                await response.prepare(request)
                passed = 0
                async for chunk in upstream.content.iter_any():
                    if fault == 'cut_response' and passed + len(chunk) >= cut:
                        await response.write(chunk[: cut - passed])
                        return self._reset(request)
                    passed += len(chunk)
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError):
            return self._reset(request)

    async def _replay(
        self, method: str, url: str, headers: dict[str, str], body: bytes, after: float
    ) -> None:
        await asyncio.sleep(after)
        assert self._session is not None
        try:
            async with self._session.request(
                method, url, headers=headers, data=body or None, allow_redirects=False
            ) as upstream:
                await asyncio.wait_for(upstream.content.read(64 * 1024), 0.2)
        except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError):
            pass

    async def stop(self) -> None:
        for replay in list(self._replays):
            replay.cancel()
        await asyncio.gather(*self._replays, return_exceptions=True)
        await super().stop()

    @staticmethod
    def _reset(request: web.Request) -> web.StreamResponse:
        """Reset the client's connection; the returned answer is never written."""
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=502)

    async def _send_part(self, request: web.Request, body: bytes, cut: int) -> None:
        """Send the server the request's head and at most ``cut`` bytes of its body, then a
        reset (a body not cut short loses its last byte)."""
        head = [
            f'{request.method} {request.path_qs} HTTP/1.1',
            f'Host: 127.0.0.1:{self.target}',
            f'Content-Length: {len(body)}',
        ]
        head += [f'{name}: {value}' for name, value in _end_to_end(request.headers).items()]
        part = body[: min(cut, max(0, len(body) - 1))]
        try:
            _, writer = await asyncio.open_connection('127.0.0.1', self.target)
        except OSError:
            return
        writer.write(('\r\n'.join(head) + '\r\n\r\n').encode('latin-1') + part)
        try:
            await writer.drain()
            await asyncio.sleep(0.01)
        except ConnectionError:
            pass
        writer.transport.abort()
