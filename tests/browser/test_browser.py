"""The real client in headless Chromium against a real server: calls both ways."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page

import jchannel_http
from jchannel_http import FrontendError
from support.calling_page import PAGE_SIDE, KernelSide
from support.chromium import handler_of, open_channel
from support.kernel_server import TOKEN
from support.proxies import CutProxy


@pytest.fixture(params=[None, 'poll'], ids=['probed', 'poll'])
def transport(request: pytest.FixtureRequest) -> str | None:
    """Every test runs with the transport the page probes for, and with long-poll forced."""
    return request.param


@pytest.fixture
async def server(transport: str | None) -> AsyncIterator[jchannel_http.Server]:
    async with jchannel_http.Server(token=TOKEN, heartbeat=1, transport=transport) as server:
        yield server


async def connect(page: Page, server: jchannel_http.Server) -> jchannel_http.Channel:
    forced = server.options.transport
    channel = await open_channel(
        page, server, PAGE_SIDE, KernelSide(), 10, client_ready=forced is not None
    )
    if forced is not None:  # the server's option reached the page, which uses it
        assert await page.evaluate('window.jchannelClient.transport') == forced
        assert server.status()['transport'] == forced
    return channel


async def test_page_url_connects_and_hides_the_token(server, page) -> None:
    channel = jchannel_http.Channel(server, PAGE_SIDE)
    opening = channel.open(timeout=10)
    await page.goto(server.page_url)
    assert await opening == 'ready'
    assert server.token not in page.url
    await page.wait_for_function(
        "document.getElementById('jchannel-state').textContent === 'connected'"
    )
    assert server.status()['connected'] is True


async def test_calls_both_ways(server, page) -> None:
    channel = await connect(page, server)
    task_a = channel.call('indentLeft', 'hello', 4)
    task_b = channel.call('indentRight', 'world', 4)
    assert await task_b == 'world    '
    assert await task_a == '    hello'
    assert await channel.call('later', [1, {'a': None}]) == [1, {'a': None}]
    assert await page.evaluate("channel.call('multiply', 6, 7)") == 42
    assert await page.evaluate("channel.call('slow_echo', 'é😀')") == 'é😀'
    assert page.errors == []


async def test_exceptions_both_ways(server, page) -> None:
    channel = await connect(page, server)
    with pytest.raises(FrontendError) as caught:
        await channel.call('fail')
    assert (caught.value.type, caught.value.detail) == ('RangeError', 'out of range')
    with pytest.raises(FrontendError) as caught:
        await channel.call('indentRight', 4, 'world')
    assert caught.value.type == 'TypeError' and 'padEnd' in caught.value.detail
    with pytest.raises(FrontendError, match="no method 'absent'"):
        await channel.call('absent')
    error = await page.evaluate("""channel.call('divide', 1, 0).then(
        () => null, (e) => [e.name, e.type, e.detail, e instanceof jchannel.KernelError])""")
    assert error == ['KernelError', 'ZeroDivisionError', 'division by zero', True]
    missing = await page.evaluate(
        "channel.call('absent').catch((e) => [e.name, e.type, e.detail, e.message])"
    )
    # a missing method has one name and one message both ways
    assert missing == [
        'KernelError',
        'AttributeError',
        "handler has no method 'absent'",
        "AttributeError: handler has no method 'absent'",
    ]
    with pytest.raises(FrontendError) as caught:
        await channel.call('absent')
    assert (caught.value.type, caught.value.detail, str(caught.value)) == tuple(missing[1:])
    with pytest.raises(FrontendError) as caught:
        await server.open('42')  # code that is not a function says what to give instead
    assert caught.value.type == 'TypeError'
    assert caught.value.detail == (
        'the code given to open() must evaluate to a function taking '
        'the channel, e.g. `(channel) => { ... }`, but it evaluated '
        'to a number (42)'
    )


VALUES = [
    {'nested': {'list': [1, [2, [3, {'deep': True}]]]}},
    'unicode: é ß 中文 😀 \u2028 \n\t"quotes"',
    3.141592653589793,
    -0.5,
    1e-300,
    2**53 - 1,
    -(2**53 - 1),
    None,
    [],
    {},
    '',
    0,
    False,
]


async def test_json_round_trips_both_ways(server, page) -> None:
    channel = await connect(page, server)
    assert await channel.echo(*VALUES) == VALUES
    assert await page.evaluate('(values) => channel.echo(...values)', VALUES) == VALUES
    assert await page.evaluate("(values) => channel.call('slow_echo', values)", VALUES) == VALUES


async def test_a_thousand_concurrent_calls_each_way(server, page) -> None:
    channel = await connect(page, server)
    results = await asyncio.gather(*(channel.call('count', i, timeout=30) for i in range(1000)))
    assert results == list(range(1000))
    seen = await page.evaluate('window.seen')
    assert len(seen) == 1000 and set(seen.values()) == {1}
    results = await page.evaluate("""Promise.all(
        Array.from({length: 1000}, (_, i) => channel.call('count', i)))""")
    assert results == list(range(1000))
    assert len(handler_of(channel, KernelSide).seen) == 1000 and set(
        handler_of(channel, KernelSide).seen.values()
    ) == {1}
    status = server.status()
    assert status['pending_calls'] == 0


async def test_stream_cut_mid_run_loses_and_repeats_nothing(page, transport) -> None:
    async with jchannel_http.Server(heartbeat=2, transport=transport) as server:
        proxy = await CutProxy(server.port).start()
        server._url = f'http://127.0.0.1:{proxy.port}'
        try:
            channel = await connect(page, server)
            kernel_calls = [channel.call('count', i, timeout=60) for i in range(300)]
            page_calls = page.evaluate("""Promise.all(
                Array.from({length: 300}, (_, i) => channel.call('count', 1000 + i)))""")
            page_task = asyncio.ensure_future(page_calls)
            for _ in range(3):
                await asyncio.sleep(0.05)
                proxy.cut()
            assert await asyncio.gather(*kernel_calls) == list(range(300))
            assert await page_task == list(range(1000, 1300))
            seen = await page.evaluate('window.seen')
            assert len(seen) == 300 and set(seen.values()) == {1}
            assert len(handler_of(channel, KernelSide).seen) == 300
            assert set(handler_of(channel, KernelSide).seen.values()) == {1}
            assert proxy.cuts == 3
            for _ in range(100):  # the page acknowledges everything once it is idle
                if server.status()['outbox']['messages'] == 0:
                    break
                await asyncio.sleep(0.05)
            assert server.status()['outbox']['messages'] == 0
        finally:
            await proxy.stop()


async def test_reload_brings_the_channel_back(server, page) -> None:
    channel = await connect(page, server)
    assert await channel.call('indentLeft', 'a', 1) == ' a'
    await page.reload()
    assert await channel.call('indentLeft', 'b', 2, timeout=10) == '  b'
