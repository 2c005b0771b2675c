"""What users' worst inputs do to a real page in Chromium and a real kernel server: every call is
answered once, the loop never spins, values are refused by name rather than changed, and the
channel keeps working afterwards."""

from __future__ import annotations

import asyncio
import logging
import math
import time

import numpy
import pytest
from playwright.async_api import Page

import jchannel_http
from support.chromium import handler_of, open_channel
from support.kernel_server import TOKEN

PAGE_SIDE = """(channel) => {
  window.channel = channel;
  window.received = 0;
  channel.handler = {
    size(text) { window.received += 1; return text.length; },
    echo(value) { return value; },
  };
  return 'ready';
}"""


class Unprintable(Exception):
    def __str__(self) -> str:
        raise ValueError('no words for it')


class KernelSide:
    def __init__(self) -> None:
        self.runs: list[str] = []

    def unprintable(self) -> None:
        self.runs.append('unprintable')
        raise Unprintable()

    def interrupted(self) -> None:
        self.runs.append('interrupted')
        raise KeyboardInterrupt()  # what the notebook's stop button raises in a running handler

    async def exits(self) -> None:
        self.runs.append('exits')
        raise SystemExit(3)

    def fine(self, value: object) -> object:
        self.runs.append('fine')
        return value

    def nan(self) -> float:
        return math.nan


async def connect(page: Page, server: jchannel_http.Server) -> jchannel_http.Channel:
    return await open_channel(page, server, PAGE_SIDE, KernelSide(), 10)


async def page_call(page: Page, name: str, *args: object) -> dict:
    """Call kernel method ``name`` from the page; its result or its error as a dict."""
    return await page.evaluate(
        """async ([name, args]) => {
      try { return {value: await window.channel.call(name, ...args)}; }
      catch (e) { return {error: e.name, type: e.type, detail: e.detail, message: e.message}; }
    }""",
        [name, list(args)],
    )


async def test_many_large_kernel_calls_wait_for_room_without_spinning(page) -> None:
    """40 concurrent 1 MiB calls once spun the loop forever (outbox full by bytes); 200 must
    complete while the loop stays responsive."""
    async with jchannel_http.Server(token=TOKEN, heartbeat=1) as server:
        channel = await connect(page, server)
        loop = asyncio.get_running_loop()
        gaps: list[float] = []
        running = True

        async def tick() -> None:
            last = loop.time()
            while running:
                await asyncio.sleep(0.01)
                now = loop.time()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        text = 'x' * (1024 * 1024)
        started = time.monotonic()
        sizes = await asyncio.wait_for(
            asyncio.gather(*(channel.call('size', text, timeout=120) for _ in range(200))), 150
        )
        elapsed = time.monotonic() - started
        running = False
        await ticker
        assert sizes == [len(text)] * 200
        assert await page.evaluate('window.received') == 200
        assert max(gaps) < 2, f'the loop stalled for {max(gaps):.1f} s'
        assert server.status()['outbox']['bytes'] <= server.options.outbox_bytes
        print(f'200 calls of 1 MiB in {elapsed:.1f} s; longest loop gap {max(gaps) * 1000:.0f} ms')


async def test_errors_that_cannot_describe_themselves_still_answer(page, caplog) -> None:
    caplog.set_level(logging.WARNING, logger='jchannel_http')
    async with jchannel_http.Server(token=TOKEN, heartbeat=1) as server:
        channel = await connect(page, server)
        answer = await page_call(page, 'unprintable')
        assert answer['error'] == 'KernelError' and answer['type'] == 'Unprintable'
        assert 'could not describe itself' in answer['detail']
        warnings = [
            record
            for record in caplog.records
            if record.name == 'jchannel_http' and record.levelno == logging.WARNING
        ]
        assert len(warnings) == 1 and warnings[0].exc_info is not None
        assert 'unprintable' in warnings[0].getMessage()
        assert 'Traceback' in caplog.text and ', in unprintable' in caplog.text  # where it raised
        assert (await page_call(page, 'fine', 5)) == {'value': 5}
        assert handler_of(channel, KernelSide).runs == ['unprintable', 'fine']


async def test_the_same_error_over_http_is_answered_422(page, http) -> None:
    async with jchannel_http.Server(token=TOKEN, heartbeat=1) as server:
        channel = jchannel_http.Channel(server, PAGE_SIDE, name='direct')
        channel.handler = KernelSide()
        async with http.post(f'{server.url}/channels/direct/call/unprintable') as response:
            body = await response.json()
        assert response.status == 422
        assert body['name'] == 'Unprintable' and 'could not describe itself' in body['message']
        async with http.post(f'{server.url}/channels/direct/call/interrupted') as response:
            assert response.status == 422
            assert (await response.json())['name'] == 'KeyboardInterrupt'
        async with http.post(f'{server.url}/channels/direct/call/nan') as response:
            body = await response.json()
        assert response.status == 422 and 'cannot send result: nan' in body['message']


@pytest.mark.parametrize('method', ['interrupted', 'exits'])
async def test_interrupt_and_exit_in_a_handler_end_only_that_call(page, method) -> None:
    async with jchannel_http.Server(token=TOKEN, heartbeat=1) as server:
        channel = await connect(page, server)
        answer = await page_call(page, method)
        assert answer['error'] == 'KernelError'
        assert answer['type'] == {'interrupted': 'KeyboardInterrupt', 'exits': 'SystemExit'}[method]
        assert (await page_call(page, 'fine', 'still here')) == {'value': 'still here'}
        assert await channel.call('echo', [1, 2]) == [1, 2]


async def test_values_json_cannot_carry_are_refused_by_name_and_nothing_is_sent(page) -> None:
    async with jchannel_http.Server(token=TOKEN, heartbeat=1) as server:
        channel = await connect(page, server)
        sent = server.status()['sent']
        with pytest.raises(TypeError, match=r"cannot send args\[2\]\['x'\]: nan"):
            await channel.call('echo', 1, 2, {'x': math.nan})
        with pytest.raises(TypeError, match=r'cannot send args\[0\]\[1\]: inf'):
            await channel.call('echo', [0, math.inf])
        with pytest.raises(TypeError, match=r'cannot send args\[0\]: the integer'):
            await channel.call('echo', 2**53)
        assert server.status()['sent'] == sent
        answer = await page_call(page, 'nan')
        assert answer['error'] == 'KernelError' and answer['type'] == 'TypeError'
        assert 'cannot send result: nan' in answer['detail']
        values = [
            numpy.arange(4).reshape(2, 2),
            numpy.float32(0.25),
            numpy.int64(-3),
            numpy.bool_(False),
        ]
        assert await channel.call('echo', values) == [[[0, 1], [2, 3]], 0.25, -3, False]


async def test_lone_surrogates_cross_unchanged_both_ways(page) -> None:
    async with jchannel_http.Server(token=TOKEN, heartbeat=1) as server:
        channel = await connect(page, server)
        texts = ['\ud83d', 'cut \ud83d', '\ude00 tail', '\udfff\ud800']
        assert await channel.call('echo', texts) == texts
        lengths = await page.evaluate("""async () => {
          const emoji = '\\u{1F600}';
          const cut = emoji.slice(0, 1);
          const back = await window.channel.call('fine', [cut, 'a' + cut, emoji]);
          return [back[0] === cut, back[1] === 'a' + cut, back[2] === emoji, back[0].length];
        }""")
        assert lengths == [True, True, True, 1]
        assert handler_of(channel, KernelSide).runs == ['fine']


async def test_closed_channels_are_released(page) -> None:
    async with jchannel_http.Server(token=TOKEN, heartbeat=1) as server:
        await page.goto(server.page_url)
        first = await server.open('(channel) => 1', timeout=10, name='demo')
        await first.close()
        for index in range(300):
            channel = await server.open(f'(channel) => {index}', timeout=10, name='demo')
            await channel.close()
        status = server.status()
        assert status['channels'] == []
        assert await page.evaluate('window.jchannelClient.stats.channels') == 0
        again = await server.open('(channel) => "again"', timeout=10, name='demo')
        assert server.channel('demo') is again
        assert [item['name'] for item in server.status()['channels']] == ['demo']
        await again.close()
        assert await first.open() == 1  # a closed channel opens again, registered again
        assert server.channel('demo') is first
