"""A request sent again with its old cursor (by a proxy, or by the browser after a cut) is a
replay, not a page that lost its state: the session goes on and no waiting call fails."""

from __future__ import annotations

import asyncio

import jchannel_http
from support.counting import COUNTING_PAGE, CountingKernel
from support.proxies import RetryingProxy

TOKEN = 'replayed-requests-token-0123456789'


async def test_a_poll_sent_again_after_newer_acknowledgements_keeps_the_session(page) -> None:
    # the proxy listens first (on a free port it holds), then the server behind it
    proxy = await RetryingProxy(0, retry_after=2).start()
    async with jchannel_http.Server(
        token=TOKEN, heartbeat=2, transport='poll', poll_hold=8, url=proxy.url
    ) as server:
        proxy.target = server.port
        try:
            await page.goto(server.page_url)
            channel = await server.open(COUNTING_PAGE, timeout=30)
            channel.handler = CountingKernel()
            await page.evaluate("""() => { channel.handler.slow = () =>
                new Promise((resolve) => setTimeout(() => resolve('slow done'), 4000)); }""")
            session = server.status()['session']
            waiting = channel.call('slow', timeout=30)  # answered after the replay
            await asyncio.sleep(0.3)  # the page has it; its next poll is held
            before = server.status()['acked']
            # Results carried back in the answers to the page's POSTs, and acknowledged there,
            # move the kernel's acknowledged frame past the held poll's cursor.
            assert await page.evaluate("channel.call('count', 1)") == 1
            assert await page.evaluate("channel.call('count', 2)") == 2
            for _ in range(40):
                if server.status()['acked'] > before:
                    break
                await asyncio.sleep(0.05)
            assert server.status()['acked'] > before
            assert await waiting == 'slow done'
            assert proxy.retries >= 1, 'the held poll was not sent again'
            assert server.status()['session'] == session
            assert await channel.call('count', 3, timeout=10) == 3
            assert await page.evaluate('window.jchannelClient.session') == session
        finally:
            await proxy.stop()
