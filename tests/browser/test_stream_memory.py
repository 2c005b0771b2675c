"""512 MiB each way into a slow consumer: the kernel's memory stays bounded.

The server runs in a process of its own (so its RSS is its own) and the page in a plain headless
Chromium (not driven by Playwright, which copies every request body it sees).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from support.chromium import CHROMIUM, CHROMIUM_ARGS

HERE = Path(__file__).resolve().parent.parent / 'support'
MiB = 1 << 20
SIZE = 512 * MiB
BROWSER = [CHROMIUM, '--headless=new', *CHROMIUM_ARGS, '--disable-extensions']


def rss(pid: int) -> int:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
    raise RuntimeError('no VmRSS line')


async def next_line(process: asyncio.subprocess.Process, seconds: float) -> dict:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), seconds)
    if not line:
        raise RuntimeError('the server process ended early')
    return json.loads(line)


@pytest.mark.timeout(300)
async def test_512_mib_each_way_into_a_slow_consumer_keeps_kernel_memory_bounded() -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / 'stream_memory_server.py'),
        str(SIZE),
        stdout=subprocess.PIPE,
        cwd=HERE.parent.parent,
    )
    profile = tempfile.TemporaryDirectory(prefix='jchannel-chromium-')
    browser = None
    try:
        page_url = (await next_line(server, 30))['page_url']
        browser = subprocess.Popen(
            [*BROWSER, f'--user-data-dir={profile.name}', page_url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert (await next_line(server, 60))['event'] == 'connected'
        baseline = rss(server.pid)
        peak = baseline
        results = []
        reading = asyncio.ensure_future(next_line(server, 240))
        for _ in range(240 * 20):  # sample the RSS every 50 ms until both transfers ended
            done, _ = await asyncio.wait({reading}, timeout=0.05)
            peak = max(peak, rss(server.pid))
            if done:
                results.append(reading.result())
                if len(results) == 2:
                    break
                reading = asyncio.ensure_future(next_line(server, 240))
        assert results == [
            {'event': 'down', 'size': SIZE, 'held': 0},
            {'event': 'up', 'size': SIZE, 'held': 0},
        ]
        growth = peak - baseline
        assert growth < 64 * MiB, f'the kernel grew by {growth / MiB:.1f} MiB'
    finally:
        if browser is not None:
            os.killpg(browser.pid, signal.SIGTERM)
            browser.wait(timeout=10)
        if server.returncode is None:
            server.terminate()
        await server.wait()
        profile.cleanup()
