"""A real page in headless Chromium reaching the kernel through the stand-in of Colab's proxy
(tests/support/colab_proxy.py), with start(tunnel='colab') and tunnel='auto' asking the stand-in
google.colab for the address: POST is refused, so page -> kernel frames and uploads go over GET;
the buffered variant holds event streams, so kernel -> page frames come by long-poll; the capped
variant cuts large answers, so answers and downloads come in bounded pieces."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page

import jchannel_http
from support.chromium import handler_of, open_channel
from support.colab_proxy import ColabProxy
from support.counting import CountingKernel, calls_both_ways, check_each_ran_once
from support.stand_ins import install_fake_colab
from support.waiting import wait_connected

TOKEN = 'colab-browser-token-0123456789'
CAP = 256 * 1024  # above client.js (about 127 KB), which must load whole
EXPECTED_TRANSPORT = {'streaming': 'sse-get', 'buffered': 'poll', 'capped': 'sse-get'}

PAGE_SIDE = r"""(channel) => {
  window.channel = channel;
  window.seen = {};
  channel.handler = {
    count(id) { window.seen[id] = (window.seen[id] || 0) + 1; return id; },
    indent(text, count) { return text.length + count; },
    async digest(stream) {
      const bytes = await stream.join();
      const hash = await crypto.subtle.digest('SHA-256', bytes);
      return [bytes.length, Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, '0')).join('')];
    },
  };
  return 'ready';
}"""


class KernelSide(CountingKernel):
    def measure(self, text: str) -> int:
        return len(text)

    async def digest(self, stream) -> list:
        data = await stream.join()
        return [len(data), hashlib.sha256(data).hexdigest()]


@pytest.fixture(params=['streaming', 'buffered', 'capped'])
async def colab(request, monkeypatch) -> AsyncIterator[ColabProxy]:
    proxy = await ColabProxy(request.param, cap=CAP).start()
    install_fake_colab(monkeypatch, proxy)
    yield proxy
    await proxy.stop()


@pytest.fixture(params=['colab', 'auto'])
async def server(request, colab) -> AsyncIterator[jchannel_http.Server]:
    async with jchannel_http.Server(
        tunnel=request.param, token=TOKEN, heartbeat=2, first_event_deadline=1
    ) as server:
        assert server.url == colab.url
        yield server


RECORD_ERRORS = """(() => {
  // every lastError the client reports, from its start (the page's own script starts it)
  window.errors = [];
  let api;
  Object.defineProperty(window, 'jchannel', {
    configurable: true,
    get: () => api,
    set: (value) => {
      api = {...value, start: (url, options) => value.start(url, {...options, onstatechange: (c) => {
        if (c.lastError && window.errors.at(-1) !== c.lastError.message) window.errors.push(c.lastError.message);
        options.onstatechange?.(c);
      }})};
    },
  });
})()"""


async def connect(page: Page, server: jchannel_http.Server) -> jchannel_http.Channel:
    await page.add_init_script(RECORD_ERRORS)
    return await open_channel(page, server, PAGE_SIDE, KernelSide(), 30, client_ready=True)


async def test_calls_both_ways_a_thousand_at_once_over_get(page, server, colab) -> None:
    channel = await connect(page, server)
    await calls_both_ways(page, channel, range(10))
    assert await page.evaluate('window.jchannelClient.sendMethod') == 'get'
    await wait_connected(page, EXPECTED_TRANSPORT[colab.variant])
    await calls_both_ways(page, channel, range(10, 1010))
    await check_each_ran_once(page, channel, 1010)
    status = server.status()
    assert status['send_method'] == 'get'
    assert status['transport'] == EXPECTED_TRANSPORT[colab.variant]
    assert colab.refused >= 1
    assert not [method for method, _ in colab.requests if method == 'POST'][colab.refused :]
    errors = await page.evaluate('window.errors')
    assert any(
        'the path refuses POST' in error and 'now go in GET requests' in error for error in errors
    ), errors
    assert await page.evaluate("document.getElementById('jchannel-send').textContent") == 'GET'
    assert not page.errors


SIZE = 8 * 1024 * 1024


def pattern(size: int) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(size))


async def test_eight_mib_each_way_arrive_byte_exact(page, server, colab) -> None:
    channel = await connect(page, server)
    data = pattern(SIZE)

    async def chunks():
        for at in range(0, SIZE, 1 << 20):
            yield data[at : at + (1 << 20)]

    expected = [SIZE, hashlib.sha256(data).hexdigest()]
    assert await channel.call_with_stream('digest', chunks(), timeout=120) == expected
    from_page = await page.evaluate(
        """async (size) => {
        async function* chunks() {
            for (let at = 0; at < size; at += 1 << 20) {
                const part = new Uint8Array(Math.min(1 << 20, size - at));
                for (let i = 0; i < part.length; i++) part[i] = ((at + i) * 7 + 3) % 251;
                yield part;
            }
        }
        return channel.callWithStream('digest', chunks());
    }""",
        SIZE,
    )
    assert from_page == expected
    assert await page.evaluate('window.jchannelClient.sendMethod') == 'get'
    if colab.cap is not None:
        assert colab.cut >= 1  # the 8 MiB download came in pieces under the cap
    assert not page.errors


async def wait_for_error(page: Page, text: str, seconds: float = 30) -> None:
    """Wait until the client reported an error containing ``text``; else fail naming those seen."""
    try:
        await page.wait_for_function(
            '(t) => window.errors.some((e) => e.includes(t))', arg=text, timeout=seconds * 1000
        )
    except Exception as exc:
        raise AssertionError(
            f'no error with {text!r}: {await page.evaluate("window.errors")}'
        ) from exc


async def test_calls_go_on_after_a_cut_each_once(page, server, colab) -> None:
    channel = await connect(page, server)
    await calls_both_ways(page, channel, range(20))
    transport = EXPECTED_TRANSPORT[colab.variant]
    await wait_connected(page, transport)
    for round_ in range(3):
        first = 100 * (round_ + 1)
        during = asyncio.ensure_future(calls_both_ways(page, channel, range(first, first + 50)))
        await asyncio.sleep(0.05)
        colab.cut_connections()
        await asyncio.wait_for(during, 60)
    await wait_connected(page, transport)
    await check_each_ran_once(page, channel, 20 + 3 * 50)
    assert await page.evaluate('window.jchannelClient.sendMethod') == 'get'


async def test_a_lost_server_is_told_from_a_refused_method(page, server, colab) -> None:
    channel = await connect(page, server)
    await calls_both_ways(page, channel, range(5))
    port = colab.target
    colab.target = 1  # nothing listens there: the proxy answers 502, as for a kernel gone
    colab.cut_connections()
    calls = asyncio.ensure_future(
        page.evaluate("Promise.all([channel.call('count', 100), channel.call('count', 101)])")
    )
    await wait_for_error(page, 'lost or unreachable')
    assert await page.evaluate('window.jchannelClient.sendMethod') == 'get'
    colab.target = port
    assert await asyncio.wait_for(calls, 60) == [100, 101]
    assert handler_of(channel, KernelSide).seen == dict.fromkeys([0, 1, 2, 3, 4, 100, 101], 1)
    assert not await page.evaluate(
        "window.errors.filter((e) => e.includes('lost or unreachable') && e.includes('refuses'))"
    )


@pytest.mark.parametrize('server', ['colab'], indirect=True)
async def test_a_second_page_learns_that_another_is_connected_behind_the_empty_500(
    browser, page, server, colab
) -> None:
    await connect(page, server)
    other = await browser.new_page()
    await other.add_init_script(RECORD_ERRORS)
    await other.goto(server.page_url)
    await wait_for_error(other, 'another page is connected')
    assert colab.hidden >= 1  # the 409 reached the page as an empty 500
    await page.close()  # the first page releases the server (over GET) on its way out
    await other.wait_for_function(
        "window.jchannelClient && window.jchannelClient.state === 'connected'", timeout=30_000
    )
    assert [path for method, path in colab.requests if path.startswith('/release')]
    assert (
        all(method == 'GET' for method, path in colab.requests if path.startswith('/release'))
        or colab.refused
    )


async def test_large_messages_pass_a_buffering_proxy_that_cuts_large_answers(
    page, monkeypatch
) -> None:
    proxy = await ColabProxy('buffered-capped', cap=CAP).start()
    install_fake_colab(monkeypatch, proxy)
    try:
        async with jchannel_http.Server(
            tunnel='colab', token=TOKEN, heartbeat=2, first_event_deadline=1
        ) as server:
            channel = await connect(page, server)
            await wait_connected(page, 'poll')
            text = 'x' * 40_000  # 40 of these wait at once: 1.6 MB, past the cap
            results = await asyncio.gather(
                *(channel.call('indent', text, i, timeout=120) for i in range(40))
            )
            assert results == [len(text) + i for i in range(40)]
            from_page = await page.evaluate(
                """(text) => Promise.all(
                Array.from({length: 40}, (_, i) => channel.call('measure', text + 'y'.repeat(i))))""",
                text,
            )
            assert from_page == [len(text) + i for i in range(40)]
            assert proxy.cut >= 1
            assert any(
                'answers now carry at most' in error
                for error in await page.evaluate('window.errors')
            )
            assert any('batch=' in path for _, path in proxy.requests)  # sent in parts
    finally:
        await proxy.stop()
