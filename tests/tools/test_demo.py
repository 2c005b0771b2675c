"""The demo, as a user runs it: `python -m jchannel_http demo`, then a browser tab."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from playwright.async_api import async_playwright

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
        sys.executable, '-m', 'jchannel_http', 'demo', '--port', '0', '--interval', '0.2',
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    try:
        page_url = (await read_line(process.stdout, r'(http://\S+/page\?token=\S+)')).group(1)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(**LAUNCH)
            page = await browser.new_page()
            await page.goto(page_url)
            await page.click('#demo-multiply', timeout=20_000)
            await page.wait_for_function(
                "document.getElementById('demo-answer').textContent === '42'", timeout=20_000)
            await page.click('#demo-divide')
            await page.wait_for_function(
                "document.getElementById('demo-answer').textContent.includes('ZeroDivisionError')",
                timeout=20_000)
            await page.wait_for_function(
                "document.querySelectorAll('#demo-log li').length >= 2", timeout=20_000)
            entries = await page.locator('#demo-log li').all_text_contents()
            assert any(re.fullmatch(r'\.{4}call \d+|call \d+\.{4}', text) for text in entries)
            await page.wait_for_function(
                "document.getElementById('jchannel-status').textContent.includes('\"connected\": true')",
                timeout=20_000)
            await browser.close()
        await read_line(process.stdout, r"kernel called indent(Left|Right): '")
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
