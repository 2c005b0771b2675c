"""A plain Python script whose event loop is blocked for a long time, with a page in Chromium.

The script (written to a temporary folder, run by this interpreter with the checkout first on
``PYTHONPATH``) starts a server, waits for the test's page, then blocks its loop with
``time.sleep`` for ``JCHANNEL_BLOCK_SECONDS`` (45 by default: longer than two heartbeats, the
first-event deadline and the page's transport probes). Meanwhile the page calls a ``@background``
method, answered during the block, and an ordinary one, answered only once the block ends
(after the script's synchronous code called the page with ``call_sync``);
``GET /status`` answers during the block and tells the same transport, client and session before,
during and after it. The script then stops the server, lists its threads and exits 0.

Each line the script prints is one JSON object: ``{"event": ..., ...}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
BLOCK = float(os.environ.get('JCHANNEL_BLOCK_SECONDS') or 45)
"""Seconds the script blocks its loop (``JCHANNEL_BLOCK_SECONDS`` shortens it for debugging)."""
TRANSPORT_THREAD = 'jchannel_http transport'
LINE_TIMEOUT = 60.0
"""Most seconds the script may take to print its next line, the block aside."""

SCRIPT = textwrap.dedent(
    '''
    """Starts a server, waits for a page, blocks its loop, stops."""

    import asyncio
    import json
    import os
    import threading
    import time

    import jchannel_http

    BLOCK = float(os.environ.get('JCHANNEL_BLOCK_SECONDS') or 45)
    PAGE_SIDE = """(channel) => {
        window.channel = channel;
        channel.handler = { double: (x) => 2 * x };
        return 'ready';
    }"""


    def say(event, **fields):
        print(json.dumps({'event': event, **fields}), flush=True)


    class Handler:
        def __init__(self):
            self.finished = asyncio.Event()

        @jchannel_http.background
        def during(self, value):
            return ['background', value, threading.current_thread().name, time.time()]

        def after(self, value):
            return ['ordinary', value, threading.current_thread().name, time.time()]

        def finish(self):
            self.finished.set()
            return 'finishing'


    async def main():
        server = await jchannel_http.start(heartbeat=5)
        say('started', page_url=server.page_url, url=server.url, token=server.token)
        channel = await server.open(PAGE_SIDE, timeout=60)
        handler = channel.handler = Handler()
        say('before', status=server.status())
        start = time.time()
        say('block_start', at=start)
        time.sleep(BLOCK)
        end = time.time()
        say('block_end', at=end, seconds=end - start)
        say('call_sync', result=channel.call_sync('double', 21))  # synchronous code, loop blocked
        await asyncio.wait_for(handler.finished.wait(), 60)
        say('after', status=server.status())
        await server.stop()
        say('threads', names=[thread.name for thread in threading.enumerate()])


    asyncio.run(main())
    '''
)


class Script:
    """The running script: its JSON lines, one at a time, and what it wrote to stderr."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def expect(self, event: str, seconds: float = LINE_TIMEOUT) -> dict[str, Any]:
        """The next line, checked to be ``event``."""
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), seconds)
        except asyncio.TimeoutError:
            raise AssertionError(f'the script printed no {event!r} within {seconds} s') from None
        if not line:
            raise AssertionError(f'the script ended before {event!r}: {await self.stderr()}')
        try:
            got = json.loads(line)
        except ValueError:
            raise AssertionError(f'the script printed {line!r}, not JSON') from None
        assert got['event'] == event, f'expected {event!r}, got {got}'
        return got

    async def stderr(self) -> str:
        assert self.process.stderr is not None
        if self.process.returncode is None:
            return '(still running)'
        return (await self.process.stderr.read()).decode(errors='replace')[-4000:]


async def status(http: aiohttp.ClientSession, url: str) -> tuple[dict[str, Any], float]:
    """What ``GET /status`` answers, and how many seconds it took."""
    started = time.monotonic()
    async with http.get(f'{url}/status', timeout=aiohttp.ClientTimeout(total=10)) as response:
        assert response.status == 200
        return await response.json(), time.monotonic() - started


def same_peer(status: dict[str, Any]) -> tuple[Any, Any, Any]:
    return status['transport'], status['client'], status['session']


@pytest.mark.timeout(BLOCK + 120)
async def test_a_script_blocking_its_loop_keeps_its_page_and_background_methods(
    tmp_path: Path, page
) -> None:
    path = tmp_path / 'busy.py'
    path.write_text(SCRIPT)
    env = dict(os.environ, JCHANNEL_BLOCK_SECONDS=str(BLOCK))
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(CHECKOUT), env.get('PYTHONPATH')]))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(path),
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    script = Script(process)
    try:
        started = await script.expect('started')
        url = started['url']
        await page.goto(started['page_url'])
        before = (await script.expect('before'))['status']
        assert before['connected'] and before['transport'] is not None, before
        block_start = (await script.expect('block_start'))['at']
        async with aiohttp.ClientSession(
            headers={'Authorization': f'Bearer {started["token"]}'}
        ) as http:
            during, took = await status(http, url)
            assert took < 5, f'/status took {took:.1f} s while the loop was blocked'
            assert same_peer(during) == same_peer(before), (before, during)
            page_transport = await page.evaluate('window.jchannelClient.transport')
            assert page_transport == before['transport']
            await page.evaluate("""() => {
                window.answers = {};
                for (const name of ['during', 'after']) {
                    channel.call(name, name.length).then(
                        (value) => { window.answers[name] = [value, Date.now()]; },
                        (error) => { window.answers[name] = [String(error), Date.now()]; });
                }
            }""")
            await page.wait_for_function(
                'window.answers.during !== undefined', timeout=min(BLOCK / 2, 15) * 1000
            )
            answered = await page.evaluate('window.answers')
            assert 'after' not in answered, (
                f'the ordinary method answered during the block: {answered}'
            )
            [kind, value, thread, ran], at = answered['during']
            assert [kind, value, thread] == ['background', 6, TRANSPORT_THREAD]
            assert block_start < ran and block_start < at / 1000
            block_end = await script.expect('block_end', BLOCK + LINE_TIMEOUT)
            assert block_end['seconds'] >= BLOCK - 0.01
            assert ran < block_end['at'] and at / 1000 < block_end['at']
            assert (await script.expect('call_sync'))['result'] == 42
            await page.wait_for_function('window.answers.after !== undefined', timeout=30_000)
            [kind, value, thread, ran], at = await page.evaluate('window.answers.after')
            assert [kind, value, thread] == ['ordinary', 5, 'MainThread']
            assert ran >= block_end['at'] and at / 1000 >= block_end['at'] - 0.001
            later, _ = await status(http, url)
            assert same_peer(later) == same_peer(before), (before, later)
            assert await page.evaluate('window.jchannelClient.transport') == page_transport
            assert await page.evaluate('channel.call("finish")') == 'finishing'
        after = (await script.expect('after'))['status']
        assert same_peer(after) == same_peer(before), (before, after)
        assert after['pending_calls'] == 0
        names = (await script.expect('threads'))['names']
        assert 'MainThread' in names and TRANSPORT_THREAD not in names, names
        code = await asyncio.wait_for(process.wait(), 30)
        assert code == 0, await script.stderr()
        assert page.errors == []
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
