"""The crossings between the caller's loop and the transport's (kernel/loops.py), and what the
server does with them: no page needed (a handler is called over HTTP)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

import jchannel_http
from jchannel_http.kernel.loops import Hop, TransportThread, block_on, cross
from support.kernel_server import TOKEN

HEADERS = {'Authorization': f'Bearer {TOKEN}'}


@pytest.fixture
def transport() -> Iterator[asyncio.AbstractEventLoop]:
    thread = TransportThread('test transport')
    loop = thread.start()
    yield loop
    thread.stop()
    assert not any(t.name == 'test transport' for t in threading.enumerate())


async def test_a_burst_of_callbacks_wakes_the_loop_once_and_keeps_their_order(
    transport: asyncio.AbstractEventLoop,
) -> None:
    caller = asyncio.get_running_loop()
    hop = Hop(caller)
    wakeups = 0
    real = caller.call_soon_threadsafe

    def counting(*args: Any, **kwargs: Any) -> asyncio.Handle:
        nonlocal wakeups
        wakeups += 1
        return real(*args, **kwargs)

    caller.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]
    seen: list[int] = []
    done = asyncio.Event()

    def burst() -> None:  # on the transport's thread
        for index in range(1000):
            hop.call(seen.append, index)
        hop.call(done.set)

    try:
        transport.call_soon_threadsafe(burst)
        await asyncio.wait_for(done.wait(), 10)
    finally:
        del caller.call_soon_threadsafe
    assert seen == list(range(1000))
    assert 1 <= wakeups <= 3, wakeups  # one per drain, not one per callback


async def test_cross_runs_on_the_other_loop_and_carries_results_and_errors(
    transport: asyncio.AbstractEventLoop,
) -> None:
    async def where() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    assert await cross(transport, where()) is transport

    async def fails() -> None:
        raise ValueError('from the other loop')

    with pytest.raises(ValueError, match='from the other loop'):
        await cross(transport, fails())

    async def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # handed over, the other loop keeps running
        await cross(transport, interrupted())
    assert await cross(transport, where()) is transport


async def test_cancelling_the_awaiting_task_cancels_the_work(
    transport: asyncio.AbstractEventLoop,
) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.create_task(cross(transport, forever()))
    for _ in range(200):
        if started.is_set():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):
        if cancelled.is_set():
            break
        await asyncio.sleep(0.01)
    assert cancelled.is_set()


def test_block_on_refuses_the_loop_own_thread_and_waits_elsewhere(
    transport: asyncio.AbstractEventLoop,
) -> None:
    async def answer() -> int:
        await asyncio.sleep(0.01)
        return 42

    assert block_on(transport, answer()) == 42

    async def inside() -> str:
        try:
            block_on(transport, answer())
        except jchannel_http.StateError as error:
            return str(error)
        return 'no error'

    assert 'deadlock' in block_on(transport, inside())


class Handler:
    def __init__(self) -> None:
        self.threads: list[str] = []
        self.server: jchannel_http.Server | None = None

    def ordinary(self) -> str:
        self.threads.append(threading.current_thread().name)
        return 'ordinary'

    @jchannel_http.background
    def quick(self) -> str:
        self.threads.append(threading.current_thread().name)
        return 'quick'

    @jchannel_http.background
    async def later(self) -> str:
        await asyncio.sleep(0)
        self.threads.append(threading.current_thread().name)
        return 'later'

    @jchannel_http.background
    def stop(self) -> str:
        assert self.server is not None
        self.server.stop()
        return 'stopping'


async def test_background_methods_answer_while_the_caller_loop_is_blocked() -> None:
    server = jchannel_http.Server(token=TOKEN)
    await server.start()
    handler = Handler()
    channel = jchannel_http.Channel(server, '(channel) => {}', name='busy')
    channel.handler = handler
    answers: dict[str, tuple[float, object]] = {}

    def call(method: str) -> None:  # an HTTP client on a thread of its own
        async def post() -> object:
            async with aiohttp.ClientSession(headers=HEADERS) as http:
                url = f'{server.url}/channels/busy/call/{method}'
                async with http.post(url, json=[]) as response:
                    return (await response.json())['result']

        result = asyncio.run(post())
        answers[method] = (time.monotonic(), result)

    clients = [threading.Thread(target=call, args=(name,)) for name in ('quick', 'later')]
    ordinary = threading.Thread(target=call, args=('ordinary',))
    try:
        blocked = time.monotonic()
        for client in clients:
            client.start()
        for client in clients:
            client.join(10)
        ordinary.start()
        time.sleep(1.0)  # the caller's loop is blocked: ordinary methods wait
        unblocked = time.monotonic()
        assert 'ordinary' not in answers
        for _ in range(500):
            if 'ordinary' in answers:
                break
            await asyncio.sleep(0.01)
        ordinary.join(10)
    finally:
        await server.stop()
    assert answers['quick'][1] == 'quick' and answers['later'][1] == 'later'
    assert blocked < answers['quick'][0] < unblocked and answers['later'][0] < unblocked
    assert answers['ordinary'][1] == 'ordinary' and answers['ordinary'][0] >= unblocked
    assert sorted(handler.threads[:2]) == ['jchannel_http transport'] * 2
    assert handler.threads[2] == threading.current_thread().name


async def test_a_background_method_may_stop_the_server() -> None:
    server = jchannel_http.Server(token=TOKEN)
    await server.start()
    handler = Handler()
    handler.server = server
    channel = jchannel_http.Channel(server, '(channel) => {}', name='stopper')
    channel.handler = handler
    try:
        async with aiohttp.ClientSession(headers=HEADERS) as http:
            url = f'{server.url}/channels/stopper/call/stop'
            async with http.post(url, json=[]) as response:
                assert (await response.json())['result'] == 'stopping'
        for _ in range(500):
            if not server.running and not any(
                t.name == 'jchannel_http transport' for t in threading.enumerate()
            ):
                break
            await asyncio.sleep(0.01)
        assert not server.running
        assert not any(t.name == 'jchannel_http transport' for t in threading.enumerate())
    finally:
        await server.stop()
