"""The real client in headless Chromium chooses its transport on evidence: a kernel whose event
loop is blocked (a long cell) never makes it move down, a buffering path does, and a page that
moved down moves back up once the path stops buffering."""

from __future__ import annotations

import asyncio
import time

from playwright.async_api import Page

import jchannel_http
from support.chromium import open_channel
from support.counting import COUNTING_PAGE, CountingKernel, calls_both_ways, check_each_ran_once
from support.proxies import HoldingProxy
from support.waiting import wait_connected

TOKEN = 'transport-choice-token-0123456789'

PAGE_SIDE = COUNTING_PAGE


KernelSide = CountingKernel


async def connect(page: Page, server: jchannel_http.Server) -> jchannel_http.Channel:
    channel = await open_channel(page, server, PAGE_SIDE, KernelSide(), 30, client_ready=True)
    await page.evaluate("""() => {
        const client = window.jchannelClient, shown = client.onstatechange;
        window.transports = [client.transport];
        client.onstatechange = (c) => {
            if (window.transports.at(-1) !== c.transport) window.transports.push(c.transport);
            shown(c);
        };
    }""")
    return channel


async def test_a_blocked_kernel_loop_keeps_the_page_on_its_get_event_stream(page) -> None:
    async with jchannel_http.Server(token=TOKEN, heartbeat=1, first_event_deadline=1) as server:
        channel = await connect(page, server)
        assert server.status()['transport'] == 'sse-get'
        await calls_both_ways(page, channel, range(20))
        # a cell computing synchronously: the server's event loop answers nothing for 8 s, many
        # heartbeats and first-event deadlines
        time.sleep(8)
        await wait_connected(page, 'sse-get', 20)
        for _ in range(100):
            if server.status()['transport'] == 'sse-get':
                break
            await asyncio.sleep(0.05)
        assert server.status()['transport'] == 'sse-get'
        await calls_both_ways(page, channel, range(20, 60))
        await check_each_ran_once(page, channel, 60)
        assert await page.evaluate('window.transports') == ['sse-get']
        assert await page.evaluate('window.jchannelClient.transport') == 'sse-get'
        assert page.errors == []


async def test_a_buffering_path_moves_the_page_down_and_back_up_once_it_stops(page) -> None:
    # the proxy listens first (on a free port it holds), then the server behind it
    proxy = await HoldingProxy(0, holding=('GET', 'POST')).start()
    async with jchannel_http.Server(
        token=TOKEN, heartbeat=1, first_event_deadline=1, upgrade_interval=3, url=proxy.url
    ) as server:
        proxy.target = server.port
        try:
            channel = await connect(page, server)
            await wait_connected(page, 'poll', 30)
            assert server.status()['transport'] == 'poll'
            await calls_both_ways(page, channel, range(50))
            proxy.holding.clear()  # the path stops buffering
            during = asyncio.ensure_future(calls_both_ways(page, channel, range(50, 250)))
            await wait_connected(page, 'sse-get', 30)
            await during
            for _ in range(100):
                if server.status()['transport'] == 'sse-get':
                    break
                await asyncio.sleep(0.05)
            assert server.status()['transport'] == 'sse-get'
            await calls_both_ways(page, channel, range(250, 300))
            await check_each_ran_once(page, channel, 300)
            transports = await page.evaluate('window.transports')
            assert transports[0] == 'poll' and transports[-1] == 'sse-get'
            assert ('GET', '/events') in proxy.requests and ('POST', '/events') in proxy.requests
            assert page.errors == []
        finally:
            await proxy.stop()


async def test_a_reload_behind_a_buffering_path_reconnects_on_the_remembered_poll_at_once(
    page,
) -> None:
    # both event streams are held: the first page probes them and ends on poll, and its tab
    # remembers it; the reloaded page polls at once, with no event stream tried
    proxy = await HoldingProxy(0, holding=('GET', 'POST')).start()
    async with jchannel_http.Server(
        token=TOKEN, heartbeat=1, first_event_deadline=1, url=proxy.url
    ) as server:
        proxy.target = server.port
        try:
            channel = await connect(page, server)
            await wait_connected(page, 'poll', 30)
            await calls_both_ways(page, channel, range(10))
            first = len(proxy.requests)
            assert ('GET', '/events') in proxy.requests[:first]
            assert ('POST', '/events') in proxy.requests[:first]
            remembered = await page.evaluate("""() => Object.entries(sessionStorage)
                .filter(([key]) => key.startsWith('jchannel-transport '))
                .map(([, value]) => JSON.parse(value))""")
            assert [(m['transport'], m['sendMethod']) for m in remembered] == [('poll', 'post')]

            started = time.monotonic()
            await page.reload()
            await page.wait_for_function(
                '() => window.jchannelClient?.state === "connected"', timeout=10_000, polling=10
            )
            elapsed = time.monotonic() - started
            assert await page.evaluate('window.jchannelClient.transport') == 'poll'
            assert elapsed < 1.0, f'the reloaded page took {elapsed:.2f} s to connect'
            after = proxy.requests[first:]
            assert ('GET', '/poll') in after
            assert ('GET', '/events') not in after and ('POST', '/events') not in after
            # no move from one transport to the next was reported either
            assert await page.evaluate('window.jchannelClient.lastError') is None

            reopened = await server.open(PAGE_SIDE, timeout=30)
            reopened.handler = KernelSide()
            await calls_both_ways(page, reopened, range(20))
            await check_each_ran_once(page, reopened, 20)
            assert page.errors == []
        finally:
            await proxy.stop()


async def test_the_servers_remember_transport_reaches_the_page(browser) -> None:
    memory = (
        "Object.keys(sessionStorage).filter((key) => key.startsWith('jchannel-transport ')).length"
    )
    for seconds, remembered in ((600, 1), (0, 0)):
        page = await browser.new_page()
        try:
            async with jchannel_http.Server(
                token=TOKEN, heartbeat=1, remember_transport=seconds
            ) as server:
                await page.goto(server.page_url)
                await wait_connected(page, 'sse-get')
                assert await page.evaluate(memory) == remembered, seconds
        finally:
            await page.close()
