"""The stand-in of Colab's proxy (tests/support/colab_proxy.py) does what the public reports say."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from support.colab_proxy import ColabProxy


class Upstream:
    """A small kernel-side server recording what reaches it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict]] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> Upstream:
        app = web.Application()
        app.router.add_route('*', '/{tail:.*}', self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, '127.0.0.1', 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.raw_path, dict(request.headers)))
        if request.path == '/status/401':
            return web.json_response({'error': 'unauthorized'}, status=401)
        if request.path == '/status/503':
            return web.json_response({'error': 'unavailable'}, status=503)
        if request.path == '/slow':
            response = web.StreamResponse(headers={'Content-Type': 'text/event-stream'})
            await response.prepare(request)
            await response.write(b'first\n')
            await asyncio.sleep(0.5)
            await response.write(b'second\n')
            return response
        if request.path == '/big':
            response = web.StreamResponse(headers={'Content-Type': 'application/octet-stream'})
            await response.prepare(request)
            for _ in range(16):
                await response.write(b'x' * 65536)
            return response
        return web.json_response({'ok': True})

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = await Upstream().start()
    yield server
    await server.stop()


async def proxy_to(
    upstream: Upstream, variant: str = 'streaming', cap: int = 256 * 1024
) -> ColabProxy:
    proxy = await ColabProxy(variant, cap).start()
    assert proxy.proxy_port(upstream.port) == proxy.url + '/'
    return proxy


async def test_post_and_other_methods_are_refused_without_reaching_the_kernel(upstream) -> None:
    proxy = await proxy_to(upstream)
    try:
        async with aiohttp.ClientSession() as http:
            for method in ('POST', 'PUT', 'DELETE', 'PATCH'):
                async with http.request(method, f'{proxy.url}/messages', data=b'{}') as response:
                    assert response.status == 500
                    assert await response.text() == 'Not allowed'
            for method in ('GET', 'HEAD', 'OPTIONS'):
                async with http.request(method, f'{proxy.url}/x') as response:
                    assert response.status == 200
        assert [method for method, _, _ in upstream.seen] == ['GET', 'HEAD', 'OPTIONS']
        assert proxy.refused == 4
    finally:
        await proxy.stop()


async def test_upstream_4xx_becomes_an_empty_500_and_other_statuses_pass(upstream) -> None:
    proxy = await proxy_to(upstream)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f'{proxy.url}/status/401') as response:
                assert response.status == 500 and await response.read() == b''
            async with http.get(f'{proxy.url}/status/503') as response:
                assert response.status == 503
                assert (await response.json())['error'] == 'unavailable'
    finally:
        await proxy.stop()


async def test_authuser_is_appended_and_upgrade_is_dropped(upstream) -> None:
    proxy = await proxy_to(upstream)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f'{proxy.url}/a?b=%261') as response:
                assert response.status == 200
            async with http.get(f'{proxy.url}/c') as response:
                assert response.status == 200
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(f'{proxy.url}/probe/websocket')
        paths = [path for _, path, _ in upstream.seen]
        assert paths[:2] == ['/a?b=%261&authuser=0', '/c?authuser=0']
        assert 'Upgrade' not in upstream.seen[2][2]
    finally:
        await proxy.stop()


async def read_timed(proxy: ColabProxy, path: str) -> list[tuple[float, bytes]]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    parts = []
    async with aiohttp.ClientSession() as http:
        async with http.get(f'{proxy.url}{path}') as response:
            async for chunk in response.content.iter_any():
                parts.append((loop.time() - started, chunk))
    return parts


async def test_the_streaming_variant_streams_and_the_buffered_one_holds(upstream) -> None:
    streaming = await proxy_to(upstream)
    buffered = await proxy_to(upstream, 'buffered')
    try:
        parts = await read_timed(streaming, '/slow')
        assert parts[0][1] == b'first\n' and parts[0][0] < 0.4
        parts = await read_timed(buffered, '/slow')
        assert parts[0][0] >= 0.45 and b''.join(chunk for _, chunk in parts) == b'first\nsecond\n'
    finally:
        await streaming.stop()
        await buffered.stop()


@pytest.mark.parametrize('variant', ['capped', 'buffered-capped'])
async def test_the_capped_variants_cut_answers_after_the_cap(upstream, variant) -> None:
    proxy = await proxy_to(upstream, variant, cap=100_000)
    try:
        received = bytearray()
        async with aiohttp.ClientSession() as http:
            async with http.get(f'{proxy.url}/big') as response:
                with pytest.raises(aiohttp.ClientPayloadError):
                    async for chunk in response.content.iter_any():
                        received += chunk
            async with http.get(f'{proxy.url}/x') as response:  # small answers pass
                assert await response.json() == {'ok': True}
        assert len(received) == 100_000 and proxy.cut == 1
    finally:
        await proxy.stop()


async def test_a_url_of_max_url_characters_passes_the_proxy_and_the_default_server() -> None:
    import jchannel_http

    async with jchannel_http.Server(token='t' * 24) as server:
        proxy = await ColabProxy().start()
        try:
            proxy.proxy_port(server.port)
            head = f'{proxy.url}/status?pad='
            url = head + 'x' * (server.options.max_url - len(head))
            assert len(url) == 8000
            auth = {'Authorization': 'Bearer ' + 't' * 24}
            async with aiohttp.ClientSession(headers=auth) as http:
                async with http.get(url) as response:
                    assert response.status == 200  # with "&authuser=0" appended on the way
            assert proxy.requests[-1][1].endswith('&authuser=0')
        finally:
            await proxy.stop()
