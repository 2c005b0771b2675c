"""A real page in headless Chromium reaching the kernel through a tunnel, calls both ways.

Through the fake cloudflared (which holds GET event streams, as the real one does) the client
must end on the POST event stream; through a real Jupyter server with the real
jupyter-server-proxy 4.x it keeps the GET event stream.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from typing import AsyncIterator

import aiohttp
import pytest

import jchannel_http
from support.stand_ins import FakeCloudflared, install_fake_cloudflared, process_gone
from support.ports import free_port
from support.calling_page import PAGE_SIDE, KernelSide

TOKEN = 'browser-tunnel-token-0123'
JUPYTER_TOKEN = 'jupyter-token-0123456789'
PREFIX = '/user/alice/'


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
            "document.getElementById('jchannel-transport').textContent === 'sse-post'")
        await context.close()
    finally:
        pid = server.tunnel.pid
        await server.stop()
    assert process_gone(pid)


@pytest.fixture
async def jupyter() -> AsyncIterator[str]:
    """A real Jupyter server with jupyter-server-proxy under PREFIX, token auth; its origin."""
    port = free_port()
    root = tempfile.TemporaryDirectory(prefix='jchannel-jupyter-')
    others = ('jupyterlab', 'nbclassic', 'notebook', 'jupyter_lsp', 'jupyter_server_terminals',
              'notebook_shim')  # not needed: off, for a faster start
    only_the_proxy = repr({'jupyter_server_proxy': True, **{name: False for name in others}})
    env = {**os.environ, 'JUPYTER_RUNTIME_DIR': root.name, 'JUPYTER_DATA_DIR': root.name}
    process = subprocess.Popen(
        [sys.executable, '-m', 'jupyter_server', '--no-browser', '--allow-root',
         '--ip=127.0.0.1', f'--port={port}', f'--IdentityProvider.token={JUPYTER_TOKEN}',
         f'--ServerApp.base_url={PREFIX}', f'--ServerApp.root_dir={root.name}',
         f'--ServerApp.jpserver_extensions={only_the_proxy}'],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    origin = f'http://127.0.0.1:{port}'
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(150):
                if process.poll() is not None:
                    raise RuntimeError(f'jupyter exited: {process.stderr.read().decode()}')
                try:
                    async with http.get(f'{origin}{PREFIX}api/status',
                                        params={'token': JUPYTER_TOKEN}) as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError('jupyter did not answer within 30 s')
        yield origin
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()
        root.cleanup()


async def test_a_page_through_jupyter_server_proxy(jupyter, browser, monkeypatch) -> None:
    monkeypatch.setenv('JUPYTERHUB_SERVICE_PREFIX', PREFIX)
    async with jchannel_http.Server(tunnel='jupyter-server-proxy', token=TOKEN,
                                    heartbeat=2) as server:
        assert server.url == f'{PREFIX}proxy/{server.port}'
        page = await browser.new_page()
        await page.goto(f'{jupyter}{PREFIX}api/status?token={JUPYTER_TOKEN}')  # logs in
        await page.goto(jupyter + server.page_url)
        await calls_both_ways(server, page)
        assert server.status()['transport'] == 'sse-get'
