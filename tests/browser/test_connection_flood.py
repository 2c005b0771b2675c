"""1,100 idle connections against a kernel server limited to 1,024 descriptors, while a page in
headless Chromium keeps calling both ways."""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from collections.abc import Iterator

import pytest

TOKEN = 'flood-token-0123456789'
HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'support')


@pytest.fixture
def descriptors() -> Iterator[None]:
    """Room in this process for the connections it opens."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_idle_connections_cannot_exhaust_the_kernel(browser, descriptors) -> None:
    root = os.path.dirname(os.path.dirname(HERE))
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([root, os.environ.get('PYTHONPATH', '')])}
    kernel = await asyncio.create_subprocess_exec(
        sys.executable,
        os.path.join(HERE, 'flood_server.py'),
        TOKEN,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    idle: list[asyncio.StreamWriter] = []
    try:
        assert kernel.stdout is not None
        port = int(await asyncio.wait_for(kernel.stdout.readline(), 20))
        page = await browser.new_page()
        await page.goto(f'http://127.0.0.1:{port}/page?token={TOKEN}')
        assert await asyncio.wait_for(kernel.stdout.readline(), 20) == b'open\n'
        await page.wait_for_function('window.channel && window.channel.handler', timeout=10000)

        readers = []
        opened_at = time.monotonic()
        for index in range(1100):
            reader, writer = await asyncio.open_connection('127.0.0.1', port)
            readers.append(reader)
            idle.append(writer)
            if index % 100 == 99:  # the page keeps calling both ways meanwhile
                assert await page.evaluate('(x) => channel.call("ask_page", x)', index) == 2 * index
        guard = await page.evaluate('channel.call("guard")')
        assert guard['unauthenticated'] <= 128
        assert await page.evaluate('channel.call("open_files", 50)') == 50
        assert await page.evaluate('channel.call("descriptors")') < 1024 - 64
        for x in range(20):
            assert await page.evaluate('(x) => channel.call("ask_page", x)', x) == 2 * x

        async def closed(reader: asyncio.StreamReader) -> bool:
            try:
                return await asyncio.wait_for(reader.read(1), 10) == b''
            except (ConnectionError, asyncio.TimeoutError):
                return isinstance(reader.exception(), ConnectionError)

        results = await asyncio.gather(*(closed(reader) for reader in readers))
        assert all(results)  # every idle connection was closed by the server...
        assert time.monotonic() - opened_at < 3 + 20  # ...within head_timeout of the last one
        assert await page.evaluate('channel.call("descriptors")') < 100
        assert await page.evaluate('(x) => channel.call("ask_page", x)', 21) == 42
        await page.close()
    finally:
        for writer in idle:
            writer.close()
        kernel.kill()
        _, errors = await kernel.communicate()
    assert b'out of system resource' not in errors
    assert b'Traceback' not in errors
