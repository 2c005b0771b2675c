"""A real page in headless Chromium reaching the kernel through a tunnel, calls both ways.

Through the fake cloudflared (which holds GET event streams, as the real one does) the client
must end on the POST event stream; through a real Jupyter server with the real
jupyter-server-proxy 4.x it keeps the GET event stream.
"""

from __future__ import annotations

import asyncio

import pytest

import jchannel_http
from jchannel_http.tunnels import CloudflaredLauncher
from support.calling_page import PAGE_SIDE, KernelSide
from support.jupyter_proxy import JUPYTER_TOKEN, PREFIX
from support.stand_ins import FakeCloudflared, install_fake_cloudflared, process_gone

TOKEN = 'browser-tunnel-token-0123'


@pytest.fixture
def fake_cloudflared(tmp_path, monkeypatch) -> FakeCloudflared:
    return install_fake_cloudflared(tmp_path, monkeypatch)


async def calls_both_ways(server: jchannel_http.Server, page) -> None:
    channel = await server.open(PAGE_SIDE, timeout=30)
    channel.handler = KernelSide()
    assert await channel.call('indentLeft', 'hello', 4, timeout=10) == '    hello'
    assert await page.evaluate("channel.call('multiply', 6, 7)") == 42
    results = await asyncio.gather(*(channel.call('count', i, timeout=30) for i in range(50)))
    assert results == list(range(50))


async def test_a_page_through_the_fake_cloudflared(fake_cloudflared, browser) -> None:
    server = await jchannel_http.start(tunnel='cloudflared', token=TOKEN, heartbeat=2)
    try:
        context = await browser.new_context(ignore_https_errors=True)  # the fake's own CA
        page = await context.new_page()
        await page.goto(server.page_url)
        await calls_both_ways(server, page)
        assert server.status()['transport'] == 'sse-post'
        await page.wait_for_function(
            "document.getElementById('jchannel-transport').textContent === 'sse-post'"
        )
        await context.close()
    finally:
        assert isinstance(server.tunnel, CloudflaredLauncher)
        pid = server.tunnel.pid
        await server.stop()
    assert pid is not None and process_gone(pid)


async def test_a_page_through_jupyter_server_proxy(jupyter, browser, monkeypatch) -> None:
    monkeypatch.setenv('JUPYTERHUB_SERVICE_PREFIX', PREFIX)
    async with jchannel_http.Server(
        tunnel='jupyter-server-proxy', token=TOKEN, heartbeat=2
    ) as server:
        assert server.url == f'{PREFIX}proxy/{server.port}'
        page = await browser.new_page()
        await page.goto(f'{jupyter}{PREFIX}api/status?token={JUPYTER_TOKEN}')  # logs in
        await page.goto(jupyter + server.page_url)
        await calls_both_ways(server, page)
        assert server.status()['transport'] == 'sse-get'
