"""Kernel -> page streams through a path that passes a response only once it ended.

The server must end each download response by itself once it wrote a window's worth of bytes
(no acknowledgement can come back before the path lets the response go); before, each such
response ended only after ``heartbeat`` seconds without acknowledgements."""

from __future__ import annotations

import time

import pytest

import jchannel_http
from support.kernel_server import TOKEN
from support.proxies import HoldingProxy
from support.stream_page import PAGE_SIDE, KernelSide, seeded_digest

MiB = 1 << 20
SIZE = 16 * MiB


@pytest.mark.parametrize('holding', [('GET',), ('GET', 'POST')])
async def test_16_mib_to_the_page_through_a_buffering_path_takes_seconds(page, holding) -> None:
    proxy = await HoldingProxy(0, holding=holding).start()
    # heartbeat 15 s (the default): one idle wait per window would cost 15 s
    async with jchannel_http.Server(
        token=TOKEN, url=proxy.url, heartbeat=15, first_event_deadline=1
    ) as server:
        proxy.target = server.port
        try:
            await page.goto(server.page_url)
            channel = await server.open(PAGE_SIDE, timeout=20)
            channel.handler = KernelSide()
            started = time.monotonic()
            answer = await page.evaluate(
                """async (size) => {
                const stream = await channel.call('produce', size, 9, 1 << 20);
                const data = await stream.join();
                return [data.length, await t.hex(data)];
            }""",
                SIZE,
            )
            seconds = time.monotonic() - started
            assert answer == [SIZE, seeded_digest(SIZE, 9, 1 << 20)]
            assert seconds < 5, f'16 MiB took {seconds:.1f} s'
            downloads = [
                path
                for method, path in proxy.requests
                if method == 'GET' and path.startswith('/streams/down/')
            ]
            assert len(downloads) >= 2  # one window per response
            assert page.errors == []
        finally:
            await proxy.stop()
