"""The demo, as a user runs it: `python -m jchannel_http demo`, then a browser tab."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

from jchannel_http.tools.demo import DemoHandler
from support.chromium import LAUNCH

ROOT = Path(__file__).resolve().parent.parent.parent


async def read_line(stream: asyncio.StreamReader, pattern: str, timeout: float = 20) -> re.Match:
    async def find() -> re.Match:
        for _ in range(200):
            line = (await stream.readline()).decode()
            if not line:
                raise EOFError(f'the demo ended before printing {pattern!r}')
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f'{pattern!r} not printed')

    return await asyncio.wait_for(find(), timeout)


async def test_demo_page_calls_the_kernel_and_shows_kernel_calls() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        '-m',
        'jchannel_http',
        'demo',
        '--port',
        '0',
        '--interval',
        '0.2',
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    try:
        page_url = (await read_line(process.stdout, r'(http://\S+/page\?token=\S+)')).group(1)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(**LAUNCH)
            page = await browser.new_page()
            await page.goto(page_url)
            await page.click('#demo-multiply', timeout=20_000)
            await page.wait_for_function(
                "document.getElementById('demo-answer').textContent === '42'", timeout=20_000
            )
            await page.click('#demo-divide')
            await page.wait_for_function(
                "document.getElementById('demo-answer').textContent.includes('ZeroDivisionError')",
                timeout=20_000,
            )
            await page.wait_for_function(
                "document.querySelectorAll('#demo-log li').length >= 2", timeout=20_000
            )
            entries = await page.locator('#demo-log li').all_text_contents()
            assert any(re.fullmatch(r'\.{4}call \d+|call \d+\.{4}', text) for text in entries)
            await page.wait_for_function(
                "document.getElementById('jchannel-status').textContent.includes('\"connected\": true')",
                timeout=20_000,
            )
            await check_figures_and_streams(page)
            await browser.close()
        await read_line(process.stdout, r"kernel called indent(Left|Right): '")
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


async def check_figures_and_streams(page: Page) -> None:
    """The figures people look for are numbers, and a byte stream each way completes."""
    await page.wait_for_function(
        "/^[\\d,]+$/.test(document.getElementById('demo-rate').textContent)", timeout=30_000
    )
    figures: dict[str, str] = {}
    for name in ('transport', 'latency', 'rate'):
        figure = await page.text_content(f'#demo-{name}')
        assert figure is not None, name
        figures[name] = figure
    assert figures['transport'] in ('sse-get', 'sse-post', 'poll'), figures
    assert 0 < float(figures['latency']) < 5_000, figures
    assert int(figures['rate'].replace(',', '')) > 0, figures
    intro = await page.text_content('#demo-intro')
    assert intro is not None and 'RPC channel' in intro
    await page.wait_for_function(
        "document.getElementById('demo-chart').getContext('2d')"
        '.getImageData(0, 0, 480, 90).data.some((value) => value !== 0)',
        timeout=10_000,
    )
    await page.click('#demo-download')
    await page.wait_for_function(
        "document.getElementById('demo-download-text').textContent.startsWith('done: 32.0 MiB')",
        timeout=60_000,
    )
    assert await page.evaluate("document.getElementById('demo-download-bar').value") == 32 * 2**20
    await page.click('#demo-upload')
    await page.wait_for_function(
        "document.getElementById('demo-upload-text').textContent.startsWith('done: 8.0 MiB')",
        timeout=60_000,
    )
    await page.click('#demo-burst')
    await page.wait_for_function(
        "document.getElementById('demo-rate').dataset.bursts === '2'", timeout=30_000
    )  # the page's first burst, then the button's
    shot = os.environ.get('JCHANNEL_DEMO_SCREENSHOT')
    if shot:  # to look at the page: JCHANNEL_DEMO_SCREENSHOT=/tmp/demo.png
        await page.screenshot(path=shot, full_page=True)


async def test_the_demo_handler_refuses_bad_sizes_and_counts_what_it_reads() -> None:
    handler = DemoHandler()
    for size in (-1, 'big', True, 2**40):
        with pytest.raises(ValueError, match='size must be an integer'):
            handler.download(size)  # type: ignore[arg-type]  # refused at run time, the point of the test
    source = handler.download(70_000)
    data = b''.join([chunk async for chunk in source])
    assert source.total == len(data) == 70_000 and data.startswith(b'0123456789abcdef0')

    async def two() -> AsyncIterator[bytes]:
        yield b'hello '
        yield b'world'

    assert await handler.checksum(two(), 'x.txt') == {
        'name': 'x.txt',
        'bytes': 11,
        'sha256': hashlib.sha256(b'hello world').hexdigest(),
    }
