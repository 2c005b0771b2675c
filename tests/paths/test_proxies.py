"""The real client in headless Chromium behind real and hand-written intermediaries: it picks a
transport that works by itself, and loses and repeats nothing when connections are cut."""

from __future__ import annotations

import asyncio
import os
import random

import pytest
from playwright.async_api import Page

import jchannel_http
from support.chromium import handler_of, open_channel
from support.counting import CountingKernel
from support.jupyter_proxy import JUPYTER_TOKEN, PREFIX
from support.nginx import Nginx
from support.ports import free_port
from support.proxies import ChaosProxy, HoldingProxy
from support.stream_page import seeded_digest, seeded_stream, size_and_digest
from support.waiting import wait_until

TOKEN = 'proxy-test-token-0123456789'
MiB = 1 << 20

PAGE_SIDE = r"""(channel) => {
  window.channel = channel;
  window.seen = {};
  const hex = async (bytes) => Array.from(
    new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)),
    (byte) => byte.toString(16).padStart(2, '0')).join('');
  window.bytesOf = (size, seed) => {
    const bytes = new Uint8Array(size);
    let x = seed;
    for (let i = 0; i < size; i++) { x = (x * 1103515245 + 12345) >>> 0; bytes[i] = x >>> 24; }
    return bytes;
  };
  window.hex = hex;
  channel.handler = {
    count(id) { window.seen[id] = (window.seen[id] || 0) + 1; return id; },
    size(text) { return text.length; },
    async digest(stream) { const data = await stream.join(); return [data.length, await hex(data)]; },
  };
  return 'ready';
}"""

# the defaults that hurt, with nginx's default HTTP/1.0 to the upstream: responses buffered
# whatever the server asks, large buffers, no Upgrade headers, 1 MiB request bodies, and a read
# timeout shorter than the poll hold
BUFFERING = """            proxy_buffering on;
            proxy_ignore_headers X-Accel-Buffering;
            proxy_buffer_size 64k;
            proxy_buffers 16 64k;
            proxy_busy_buffers_size 128k;
            proxy_read_timeout 20s;"""


class KernelSide(CountingKernel):
    """Kernel methods the page calls; every invocation is counted per call id."""

    def size(self, text: str) -> int:
        return len(text)

    async def digest(self, stream) -> list:
        return list(await size_and_digest(stream))


async def connect(
    page: Page, server: jchannel_http.Server, page_url: str | None = None
) -> jchannel_http.Channel:
    """Open ``page_url`` (the server's page by default) and a channel to it."""
    return await open_channel(
        page, server, PAGE_SIDE, KernelSide(), 30, page_url, client_ready=True
    )


async def page_transport(page: Page) -> str:
    return await page.evaluate('window.jchannelClient.transport')


async def calls_both_ways(page: Page, channel: jchannel_http.Channel, count: int) -> None:
    """``count`` concurrent calls each way, each run exactly once."""
    kernel = asyncio.gather(*(channel.call('count', i, timeout=120) for i in range(count)))
    from_page = page.evaluate(
        """(count) => Promise.all(
        Array.from({length: count}, (_, i) => channel.call('count', i)))""",
        count,
    )
    results, page_results = await asyncio.gather(kernel, from_page)
    assert results == list(range(count)) and page_results == list(range(count))
    seen = await page.evaluate('window.seen')
    assert len(seen) == count and set(seen.values()) == {1}
    assert len(handler_of(channel, KernelSide).seen) == count and set(
        handler_of(channel, KernelSide).seen.values()
    ) == {1}


async def test_nginx_with_defaults_that_hurt_ends_on_long_poll_and_everything_completes(
    page,
) -> None:
    port = free_port()
    nginx = await Nginx(port, ['1m'], BUFFERING, http_version='1.0').start()
    try:
        async with jchannel_http.Server(token=TOKEN, port=port, url=nginx.url('1m')) as server:
            channel = await connect(page, server)
            assert await page_transport(page) == 'poll'
            assert server.status()['transport'] == 'poll'
            await calls_both_ways(page, channel, 300)
            # page -> kernel batches stay under the 1 MiB body cap
            texts = await page.evaluate("""() => Promise.all(Array.from({length: 12},
                (_, i) => channel.call('size', String(i % 10).repeat(300000))))""")
            assert texts == [300000] * 12
            assert await channel.call('size', 'k' * (3 * MiB), timeout=60) == 3 * MiB
            # byte streams both ways
            answer = await channel.call_with_stream(
                'digest', seeded_stream(3 * MiB, 5), timeout=120
            )
            assert answer == [3 * MiB, seeded_digest(3 * MiB, 5)]
            sent, got = await page.evaluate(
                """async (size) => {
                const bytes = bytesOf(size, 9);
                async function* chunks() {
                    for (let at = 0; at < size; at += 300000) yield bytes.subarray(at, at + 300000);
                }
                return [[size, await hex(bytes)], await channel.callWithStream('digest', chunks())];
            }""",
                3 * MiB,
            )
            assert got == sent
            assert nginx.refused_bodies() == 0
            assert page.errors == []
    finally:
        await nginx.stop()


async def test_a_proxy_read_timeout_shorter_than_the_poll_hold_shortens_the_polls(page) -> None:
    port = free_port()
    nginx = await Nginx(port, ['1m'], BUFFERING.replace('20s', '3s'), http_version='1.0').start()
    try:
        async with jchannel_http.Server(
            token=TOKEN, port=port, url=nginx.url('1m'), poll_hold=25, transport='poll'
        ) as server:
            channel = await connect(page, server)
            await page.evaluate("""() => {
                const client = window.jchannelClient, shown = client.onstatechange;
                window.errors = [];
                client.onstatechange = (c) => { window.errors.push(c.lastError?.message ?? null); shown(c); };
            }""")
            await page.wait_for_function(  # under the proxy's 3 s, however slow this machine
                "window.errors.some((m) => /held at most [12] s/.test(m ?? ''))", timeout=60_000
            )
            errors = [m for m in await page.evaluate('window.errors') if m]
            cut = next(m for m in errors if 'held at most' in m)
            assert 'proxy answered 504 with an HTML error page' in cut
            await asyncio.sleep(2.5)  # idle longer than the proxy allows: polls still return
            assert await channel.call('count', 1, timeout=30) == 1
            assert await page.evaluate("channel.call('count', 2)") == 2
            assert await page.evaluate('window.jchannelClient.state') == 'connected'
    finally:
        await nginx.stop()


async def test_nginx_configured_well_keeps_the_get_event_stream(page) -> None:
    port = free_port()
    nginx = await Nginx(port, ['1m']).start()
    try:
        async with jchannel_http.Server(
            token=TOKEN, port=port, url=nginx.url('1m'), first_event_deadline=15
        ) as server:
            channel = await connect(page, server)
            await calls_both_ways(page, channel, 100)
            assert await page_transport(page) == 'sse-get'
            assert server.status()['transport'] == 'sse-get'
    finally:
        await nginx.stop()


async def test_a_proxy_holding_get_responses_ends_on_the_post_event_stream(page) -> None:
    # the proxy listens first (on a port it holds), then the server behind it
    proxy = await HoldingProxy(0).start()
    try:
        async with jchannel_http.Server(
            token=TOKEN, url=proxy.url, first_event_deadline=3
        ) as server:
            proxy.target = server.port
            channel = await connect(page, server)
            await calls_both_ways(page, channel, 100)
            assert await page_transport(page) == 'sse-post'
            assert server.status()['transport'] == 'sse-post'
            assert ('GET', '/events') in proxy.requests and ('POST', '/events') in proxy.requests
            assert ('GET', '/poll') not in proxy.requests
    finally:
        await proxy.stop()


async def test_jupyter_server_proxy_absolute_keeps_the_path_prefix(jupyter, page) -> None:
    port = free_port()
    url = f'{jupyter}{PREFIX}proxy/absolute/{port}'
    async with jchannel_http.Server(
        token=TOKEN, port=port, url=url + '/', first_event_deadline=15
    ) as server:
        assert server.url == url
        await page.goto(f'{jupyter}{PREFIX}api/status?token={JUPYTER_TOKEN}')  # logs in
        channel = await connect(page, server)
        await calls_both_ways(page, channel, 100)
        assert await page_transport(page) == 'sse-get'


@pytest.mark.parametrize('transport', [None, 'sse-post', 'poll'])
async def test_a_chaos_proxy_loses_and_repeats_no_call(page, transport) -> None:
    """Every connection is cut somewhere in its first 256 KiB; with requests and poll answers
    of at most 64 KiB, many requests of every kind are cut (and some get through) before 5,000
    calls each way are done."""
    seed = int(os.environ.get('CHAOS_SEED', random.randrange(1 << 30)))
    count = 5000
    proxy = await ChaosProxy(0, seed).start()  # listening first, on a port it holds
    try:
        async with jchannel_http.Server(
            token=TOKEN,
            url=proxy.url,
            transport=transport,
            heartbeat=5,
            max_body=64 * 1024,
            poll_bytes=64 * 1024,
            first_event_deadline=15,
        ) as server:
            proxy.target = server.port
            channel = await connect(page, server)
            proxy.unleash()
            await calls_both_ways(page, channel, count)
            await wait_until(lambda: server.status()['outbox']['messages'] == 0, 30)
            await page.wait_for_function(
                'window.jchannelClient.stats.outbox.messages === 0', timeout=30_000
            )
            stats = await page.evaluate('window.jchannelClient.stats')
            assert stats['pendingCalls'] == 0 and server.status()['pending_calls'] == 0
            assert proxy.cuts >= 5, f'seed {seed}: only {proxy.cuts} connections were cut'
            print(
                f'chaos seed {seed}: {proxy.connections} connections, {proxy.cuts} cut, '
                f'transport {await page_transport(page)}'
            )
    finally:
        await proxy.stop()
