"""Each behaviour in which jchannel_http once differed from jupyter-jchannel, written
as code for the predecessor with only the import changed, against a real Chromium page.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from compat_helpers import load_client  # type: ignore[import-not-found]  # a sibling module, on sys.path by pytest (a folder of its own in mypy_path would name each conftest twice)

import jchannel_http as jchannel  # was `import jchannel`
from jchannel_http.channel import Channel  # was jchannel.channel
from jchannel_http.server import Server  # was jchannel.server
from jchannel_http.types import FrontendError, MetaGenerator, StateError  # was jchannel.types
from support.ports import free_port

HOST = '127.0.0.1'

PAGE_CODE = """
    (channel) => {
        self.runs = (self.runs || 0) + 1;
        self.pageChannel = channel;
        channel.handler = {
            async slow(seconds, value) {
                await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
                return value;
            },
            never() { self.waiting = (self.waiting || 0) + 1; return new Promise(() => {}); },
            async * chunks() { yield new Uint8Array([1, 2]); yield new Uint8Array([3]); },
            twice(x) { return 2 * x; },
        };
        return self.runs;
    }
"""


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    server = await jchannel.start(host=HOST, port=free_port(), heartbeat=1)
    yield server
    await server.stop()


async def test_1_timeout_bounds_the_wait_for_a_page_not_the_method(server, page) -> None:
    await load_client(page, server)
    channel = await server.open(PAGE_CODE)
    # a method that takes longer than the timeout (asking the user, loading a file...)
    assert await channel.call('slow', 1.5, 'done', timeout=1) == 'done'
    # a separate, explicit bound on the whole call
    with pytest.raises(TimeoutError):
        await channel.call('slow', 2, 'late', deadline=0.3)
    # the page that got a call goes away: the call fails instead of waiting forever
    waiting = channel.call('never')
    await page.wait_for_function('self.waiting === 1')
    await page.close()
    with pytest.raises(StateError):
        await asyncio.wait_for(waiting, 10)


async def test_1_timeout_still_bounds_the_wait_for_a_page(server) -> None:
    with pytest.raises(StateError):
        await server.open(PAGE_CODE, timeout=0.3)


async def test_2_calling_a_closed_or_never_opened_channel_opens_it(server, page, caplog) -> None:
    await load_client(page, server)
    channel = Channel(server, PAGE_CODE)  # never opened
    with caplog.at_level(logging.WARNING, logger='jchannel_http'):
        assert await channel.call('twice', 21) == 42
    assert 'not open' in caplog.text
    assert await page.evaluate('self.runs') == 1
    await channel.close()
    assert await channel.echo(1, 'two') == [1, 'two']  # opened again
    assert await page.evaluate('self.runs') == 2
    assert await channel.call('twice', 2) == 4


async def test_3_open_code_is_evaluated_as_a_script(server, page) -> None:
    await load_client(page, server)
    trailing = await server.open('(channel) => { channel.handler = {one: () => 1}; return "a"; };')
    before = await server.open("""
        const base = 10;
        function add(a, b) { return a + b; }
        (channel) => { channel.handler = {plus: (n) => add(base, n)}; return "b"; }
    """)
    assert await trailing.call('one') == 1
    assert await before.call('plus', 5) == 15
    assert await server.open('(channel) => 7') is not None  # the usual form still works
    with pytest.raises(FrontendError):
        await server.open('const x = 1; x;')  # not a function


async def test_4_handler_none_is_allowed_and_a_call_fails_as_a_missing_method(server, page) -> None:
    await load_client(page, server)
    channel = await server.open('(channel) => { self.c = channel; }')
    assert channel.handler is None
    channel.handler = object()
    channel.handler = None
    outcome = await page.evaluate("""Promise.all([
        self.c.call('anything').then(() => null, (e) => [e.name, e.type]),
        self.c.call('missing').then(() => null, (e) => [e.name, e.type]),
    ])""")
    assert outcome == [['KernelError', 'AttributeError'], ['KernelError', 'AttributeError']]


async def test_5_meta_generator_has_anext_and_a_second_reading_yields_nothing(server, page) -> None:
    await load_client(page, server)
    channel = await server.open(PAGE_CODE)
    stream = await channel.call('chunks')
    assert isinstance(stream, MetaGenerator)
    assert await anext(stream) == b'\x01\x02'
    assert [chunk async for chunk in stream] == [b'\x03']
    assert [chunk async for chunk in stream] == []
    assert await (await channel.call('chunks')).join() == b'\x01\x02\x03'


async def test_6_open_on_an_open_channel_does_not_run_the_code_again(server, page) -> None:
    await load_client(page, server)
    channel = await server.open(PAGE_CODE)
    assert await channel.open() == 1
    assert await channel.open() == 1
    assert await page.evaluate('self.runs') == 1


def test_7_the_predecessors_module_names_import() -> None:
    from jchannel_http import types

    assert (types.StateError, types.FrontendError, types.MetaGenerator) == (
        jchannel.StateError,
        jchannel.FrontendError,
        jchannel.MetaGenerator,
    )
    assert jchannel.types is types  # `import jchannel` gave jchannel.types as well
    assert (jchannel.server.Server, jchannel.channel.Channel) == (Server, Channel)


async def test_8_a_stopped_server_starts_again(page) -> None:
    port = free_port()
    server = Server(HOST, port, heartbeat=1)
    await server.start()
    try:
        await server.start()  # started already: nothing happens
        await load_client(page, server)
        channel = await server.open(PAGE_CODE)
        token = server.token
        await server.stop()
        await server.start()
        assert (server.port, server.token) == (port, token)
        await load_client(page, server)  # in a notebook, the next call shows the client again
        assert await channel.call('twice', 4) == 8  # the channel opens again in the new page
    finally:
        await server.stop()
    free = Server(HOST, heartbeat=1)  # no port given: a new free port each time
    await free.start()
    first = free.port
    await free.stop()
    await free.start()
    try:
        assert free.port != 0 and free.url == f'http://{HOST}:{free.port}'
        async with aiohttp.ClientSession() as http:
            async with http.get(f'{free.url}/openapi.json') as response:
                assert response.status == 200
        assert first != 0
    finally:
        await free.stop()


async def test_9_the_predecessors_options_and_members(page, caplog) -> None:
    server = Server(HOST, free_port(), None, 1)
    server.high_water_mark = 4
    server.send_timeout = 5
    server.receive_timeout = 30
    server.max_msg_size = 2 * 1024 * 1024
    server.keepalive_timeout = 20
    server.shutdown_timeout = 2
    await server.start()
    try:
        assert server.options.max_body == 2 * 1024 * 1024 == server.max_msg_size
        assert (server.keepalive_timeout, server.shutdown_timeout) == (20, 2)
        with caplog.at_level(logging.INFO, logger='jchannel_http'):
            server.start_client()  # outside a notebook: says which address to open
        assert server.page_url in caplog.text
        await load_client(page, server)
        channel = await server.open(PAGE_CODE)
        async with aiohttp.ClientSession() as http:  # the page's batches are held to the size
            async with http.post(
                f'{server.url}/messages',
                data=b' ' * (3 * 1024 * 1024),
                headers={'Authorization': f'Bearer {server.token}'},
            ) as answer:
                assert answer.status == 413
        server.stop_client()
        await page.wait_for_function("window.jchannelClient.state === 'stopped'")
        await load_client(page, server)  # the server kept running
        assert await channel.call('twice', 5) == 10
    finally:
        await server.stop()
    started = await jchannel.start(
        HOST,
        free_port(),
        max_msg_size=12345,
        send_timeout=1,
        receive_timeout=None,
        high_water_mark=2,
        keepalive_timeout=9,
        shutdown_timeout=0.5,
    )
    try:
        assert started.options.max_body == 12345
    finally:
        await started.stop()
    with pytest.raises(ValueError, match='another name of max_body'):
        Server(max_msg_size=1, max_body=2)


async def test_10_the_page_starts_and_stops_the_client_as_for_the_predecessor(server, page) -> None:
    await page.goto(f'{server.url}/openapi.json')  # any page; here one of the same origin
    await page.add_script_tag(url=f'{server.url}/client.js')
    url_with_token = f'{server.url}?token={server.token}'
    state = await page.evaluate(
        '(url) => jchannel.start(url, 4194304).then((client) => client.state)', url_with_token
    )
    assert state == 'connected'
    channel = await server.open(PAGE_CODE)
    assert await channel.call('twice', 3) == 6
    stopped = await page.evaluate(
        """async (url) => {
        const promise = jchannel.stop(url);
        const isPromise = promise instanceof Promise;
        await promise;
        return isPromise;
    }""",
        url_with_token,
    )
    assert stopped is True
    with pytest.raises(StateError):
        await channel.call('twice', 1, timeout=0.5)
