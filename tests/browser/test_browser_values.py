"""The real client in headless Chromium: values JSON cannot carry, errors that cannot describe
themselves and requests the kernel refuses never wedge the page; every call gets one answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page

import jchannel_http
from jchannel_http import FrontendError
from jchannel_http.errors import ProtocolError
from jchannel_http.http import messages as http_app
from support.chromium import open_channel
from support.kernel_server import TOKEN

PAGE_SIDE = r"""(channel) => {
  window.channel = channel;
  channel.handler = {
    aFunction() { return { f: () => 1 }; },
    aNaN() { return { items: [0, 1, 2, NaN] }; },
    anInfinity() { return [Infinity]; },
    aSymbol() { return Symbol('s'); },
    aBigInt() { return [1n]; },
    aCycle() { const x = {}; x.self = x; return x; },
    undefinedsDropped() { return [undefined, { gone: undefined, kept: 1 }]; },
    loneSurrogate() { return 'a\ud800b'; },
    same(value) { return value; },
    throwProxy() { throw new Proxy({}, { get() { throw new Error('trap'); } }); },
    throwBadName() { throw { get name() { throw new Error('no name'); }, message: 'm' }; },
    throwBadText() { throw { toString() { throw new Error('no text'); } }; },
    throwNull() { throw null; },
    throwNumber() { throw 7; },
  };
  return 'ready';
}"""

BAD_OPEN = '() => { throw new Proxy({}, { get() { throw new Error("open trap"); } }); }'


class KernelSide:
    def echo(self, value):
        return value


@pytest.fixture
async def server() -> AsyncIterator[jchannel_http.Server]:
    async with jchannel_http.Server(token=TOKEN, heartbeat=1) as server:
        yield server


async def connect(page: Page, server: jchannel_http.Server) -> jchannel_http.Channel:
    return await open_channel(page, server, PAGE_SIDE, KernelSide(), 10, client_ready=True)


async def test_results_json_cannot_carry_fail_the_kernel_call_and_nothing_wedges(
    server, page
) -> None:
    channel = await connect(page, server)
    expected = {
        'aFunction': 'cannot send result.f: a function',
        'aNaN': 'cannot send result.items[3]: NaN',
        'anInfinity': 'cannot send result[0]: Infinity',
        'aSymbol': 'cannot send result: a symbol',
        'aBigInt': 'cannot send result[0]: a BigInt',
        'aCycle': 'cannot send result.self: a cycle (a value that contains itself)',
    }
    for method, detail in expected.items():
        with pytest.raises(FrontendError) as caught:
            await channel.call(method, timeout=5)
        assert (caught.value.type, caught.value.detail) == ('TypeError', detail)
    assert await channel.call('undefinedsDropped', timeout=5) == [None, {'kept': 1}]
    assert await channel.call('same', [1, 'x'], timeout=5) == [1, 'x']
    assert await page.evaluate("channel.call('echo', 'after')") == 'after'
    assert await page.evaluate('window.jchannelClient.state') == 'connected'
    assert server.status()['outbox']['messages'] == 0
    assert page.errors == []


async def test_page_call_arguments_json_cannot_carry_reject_at_once(server, page) -> None:
    channel = await connect(page, server)
    refused = await page.evaluate("""async () => {
        const cyclic = {}; cyclic.self = cyclic;
        const attempts = [
            () => channel.call('echo', 1, 2, { x: () => 1 }),
            () => channel.echo([NaN]),
            () => channel.call('echo', -Infinity),
            () => channel.call('echo', cyclic),
            () => channel.call('echo', { n: 2n }),
        ];
        const messages = [];
        for (const attempt of attempts) {
            messages.push(await attempt().then(() => 'sent', (e) => `${e.name}: ${e.message}`));
        }
        return [messages, window.jchannelClient.stats.pendingCalls];
    }""")
    assert refused == [
        [
            'TypeError: cannot send args[2].x: a function',
            'TypeError: cannot send args[0][0]: NaN',
            'TypeError: cannot send args[0]: -Infinity',
            'TypeError: cannot send args[0].self: a cycle (a value that contains itself)',
            'TypeError: cannot send args[0].n: a BigInt',
        ],
        0,
    ]
    assert await page.evaluate("channel.call('echo', [undefined, {a: undefined}])") == [None, {}]
    assert await channel.call('same', 'still fine', timeout=5) == 'still fine'
    assert page.errors == []


async def test_errors_that_cannot_describe_themselves_still_answer_the_call(server, page) -> None:
    channel = await connect(page, server)
    undescribed = '<the thrown value could not be described: '
    expected = {
        'throwProxy': ('Error', f'{undescribed}reading it threw Error: trap>'),
        'throwBadName': ('Error', f'{undescribed}reading it threw Error: no name>'),
        'throwBadText': ('Error', f'{undescribed}it has no message and no working toString>'),
        'throwNull': ('null', 'null'),
        'throwNumber': ('number', '7'),
    }
    for method, (kind, detail) in expected.items():
        with pytest.raises(FrontendError) as caught:
            await channel.call(method, timeout=5)
        assert (caught.value.type, caught.value.detail) == (kind, detail)
    with pytest.raises(FrontendError) as caught:
        await server.open(BAD_OPEN, timeout=5)
    assert caught.value.detail == f'{undescribed}reading it threw Error: open trap>'
    assert await channel.call('same', 1, timeout=5) == 1


async def test_a_post_the_kernel_refuses_starts_a_new_session_instead_of_a_retry_loop(
    server, page, monkeypatch
) -> None:
    channel = await connect(page, server)
    old_session = server.status()['session']
    refusals = []
    real_decode = http_app.decode_item  # type: ignore[attr-defined]  # the name the test replaces

    def refusing_decode(item, allowed=None):  # a batch the kernel cannot take at all (400)
        if isinstance(item, dict) and item.get('args') == ['poison']:
            refusals.append(item)
            raise ProtocolError('this frame is poison')
        return real_decode(item, allowed)

    monkeypatch.setattr(http_app, 'decode_item', refusing_decode)
    outcome = await page.evaluate("""channel.call('echo', 'poison').then(
        () => 'answered', (e) => [e.name, e.message])""")
    assert outcome[0] == 'StateError'
    assert 'resync' in outcome[1] and '400' in outcome[1] and 'this frame is poison' in outcome[1]
    assert len(refusals) == 1, 'the refused POST is not sent again'
    for _ in range(100):  # the page's next stream starts the new session
        session = await page.evaluate('window.jchannelClient.session')
        if session not in (None, old_session) and session == server.status()['session']:
            break
        await asyncio.sleep(0.05)
    assert server.status()['session'] != old_session
    channel = await server.open(PAGE_SIDE, timeout=10)  # the new session: a new channel
    channel.handler = KernelSide()
    assert await page.evaluate("channel.call('echo', 'after')") == 'after'
    assert await channel.call('same', 2, timeout=5) == 2
    assert await page.evaluate('window.jchannelClient.state') == 'connected'
    assert len(refusals) == 1


async def test_lone_surrogates_pass_both_ways_unchanged(server, page) -> None:
    """The kernel takes ``\\udXXX`` escapes of lone surrogates and sends them back as such."""
    channel = await connect(page, server)
    assert await channel.call('loneSurrogate', timeout=5) == 'a\ud800b'
    assert await channel.call('same', 'x\udfffy', timeout=5) == 'x\udfffy'
    back = await page.evaluate(r"""channel.call('echo', 'p\udc00q').then(
        (value) => value === 'p\udc00q', (e) => e.message)""")
    assert back is True
