"""The transport on its own thread, with the real server and the real client in headless Chromium.

The test's event loop stands for a notebook kernel's: ``time.sleep`` (or a pure-Python loop)
inside a coroutine blocks it as a computing cell does. ``@background`` handler methods answer the
page meanwhile (and direct HTTP calls); ordinary ones answer once the loop runs again, and a
KeyboardInterrupt or SystemExit they raise ends only their call. ``call_sync`` calls the page from
synchronous code, even from the blocked loop's own thread, with the errors of ``call``; an
interrupt cancels it. Byte streams and progress callbacks of kernel code stay on the loop that made
them, whatever loop pumps them, and leaving a stream early stops its producer across the loops.
``stop()`` ends the thread (also when a handler method calls it) and leaves no task behind.

The randomized test prints its seed; ``JCHANNEL_SEED=<n>`` replays its choices (not its timing).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import hashlib
import json
import logging
import os
import random
import signal
import threading
import time
import urllib.request
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

import jchannel_http
from jchannel_http import (
    FrontendError,
    MetaGenerator,
    Progress,
    ProgressFeed,
    Source,
    StateError,
    background,
)
from jchannel_http.kernel.loops import TransportThread, cross
from support.chromium import handler_of, new_page, open_channel
from support.kernel_server import TOKEN

TRANSPORT_THREAD = 'jchannel_http transport'
"""The name of the thread the transport runs on."""
PACKAGE_DIR = str(Path(jchannel_http.__file__).resolve().parent)
BLOCK = 2.0
"""Seconds the test's loop is blocked, as a computing cell blocks a kernel's."""
KICK_MS = 300
"""Milliseconds after which the page makes the calls kicked just before a block."""
ANSWER_MS = 15_000
"""Most milliseconds the page's kicked calls may take to be answered once the loop runs."""

PAGE_SIDE = r"""(channel) => {
  window.channel = channel;
  window.answers = {};
  // Call kernel method `name` after `delayMs`; record what came back (once per answer) and when.
  window.kick = (id, name, args, delayMs) => {
    setTimeout(async () => {
      const started = Date.now();
      let outcome;
      try {
        outcome = { ok: await channel.call(name, ...args) };
      } catch (e) {
        outcome = { error: [e.name, e.type ?? null, e.detail ?? e.message] };
      }
      outcome.started = started;
      outcome.at = Date.now();
      (window.answers[id] ??= []).push(outcome);
    }, delayMs);
  };
  // The same with a stream of `size` bytes made from `seed`; `expected` is what should come back.
  window.kickStream = (id, name, size, seed, delayMs) => {
    setTimeout(async () => {
      const bytes = window.makeBytes(size, seed);
      const expected = [size, await window.hex(bytes), size];
      const started = Date.now();
      let outcome;
      try {
        outcome = { ok: await channel.callWithStream(name, window.chunksOf(bytes, 65536)) };
      } catch (e) {
        outcome = { error: [e.name, e.type ?? null, e.detail ?? e.message] };
      }
      Object.assign(outcome, { expected, started, at: Date.now() });
      (window.answers[id] ??= []).push(outcome);
    }, delayMs);
  };
  window.makeBytes = (size, seed) => {
    const bytes = new Uint8Array(size);
    let x = (seed >>> 0) || 1;
    for (let i = 0; i < size; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; bytes[i] = x & 255;
    }
    return bytes;
  };
  window.hex = async (bytes) => Array.from(
    new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)),
    (b) => b.toString(16).padStart(2, '0')).join('');
  window.chunksOf = async function* (bytes, size) {
    for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
  };
  channel.handler = {
    double(x) { return 2 * x; },
    fail(message) { throw new RangeError(message); },
    async relay(name, value) {
      window.relayed = await channel.call(name, value);
      return window.relayed;
    },
    wait(ms, value) { return new Promise((resolve) => setTimeout(() => resolve(value), ms)); },
    async digest(stream) {
      const data = await stream.join();
      return [data.length, await window.hex(data)];
    },
    async firstChunks(stream, count) {
      let seen = 0;
      for await (const chunk of stream) { seen += 1; if (seen === count) break; }
      return seen;
    },
    bytes(size, seed) { return window.chunksOf(window.makeBytes(size, seed), 65536); },
  };
  window.endlessClosed = 0;
  window.endless = async function* () {
    try { for (let i = 0; ; i++) yield new Uint8Array(65536).fill(i & 255); }
    finally { window.endlessClosed += 1; }
  };
  return 'ready';
}"""


@dataclasses.dataclass
class Run:
    """One run of a kernel handler method."""

    method: str
    thread: int
    thread_name: str
    loop: asyncio.AbstractEventLoop
    at: float


class Kernel:
    """Handler methods the page calls: each records where and when it ran."""

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.channel: jchannel_http.Channel | None = None
        self.server: jchannel_http.Server | None = None
        self.raised: list[BaseException] = []
        self.streams: list[tuple[str, asyncio.AbstractEventLoop]] = []
        self.produced: list[tuple[int, Progress]] = []
        """The progress of ``produce``'s stream, with the thread each snapshot came on."""

    def _ran(self, method: str) -> None:
        thread = threading.current_thread()
        self.runs.append(
            Run(method, thread.ident or 0, thread.name, asyncio.get_running_loop(), time.time())
        )

    def runs_of(self, method: str) -> list[Run]:
        return [run for run in self.runs if run.method == method]

    @background
    def bg_sync(self, value: int) -> list:
        self._ran('bg_sync')
        return ['bg_sync', value * 3 + 1]

    @background
    async def bg_async(self, value: int) -> list:
        await asyncio.sleep(0.01)
        self._ran('bg_async')
        return ['bg_async', value * 3 + 1]

    def ordinary(self, value: int) -> list:
        self._ran('ordinary')
        return ['ordinary', value * 3 + 1]

    async def ordinary_async(self, value: int) -> list:
        await asyncio.sleep(0.01)
        self._ran('ordinary_async')
        return ['ordinary_async', value * 3 + 1]

    def asks_the_page(self, value: int) -> object:
        """An ordinary sync method that needs the page's answer to give its own."""
        assert self.channel is not None
        self._ran('asks_the_page')
        return ['asked', self.channel.call_sync('double', value)]

    async def quit(self) -> str:
        """Stops the server from an ordinary method (a page's stop button)."""
        assert self.server is not None
        self._ran('quit')
        await self.server.stop()
        self._ran('quit stopped')
        return 'stopped'

    @background
    async def bg_quit(self) -> str:
        """The same from a background method, on the transport's own thread."""
        assert self.server is not None
        self._ran('bg_quit')
        await self.server.stop()
        self._ran('bg_quit stopped')
        return 'stopped'

    async def calls_the_page(self, value: int) -> object:
        """An ordinary method that calls the page while the page waits for it."""
        assert self.channel is not None
        self._ran('calls_the_page')
        return ['called', await self.channel.call('double', value)]

    def interrupted(self) -> None:
        self._ran('interrupted')
        raise KeyboardInterrupt()  # what a notebook's stop button raises in a running method

    async def exits(self) -> None:
        self._ran('exits')
        raise SystemExit(3)

    async def sleeps(self, seconds: float) -> str:
        """An ordinary method that takes long (cancelled when the server stops meanwhile)."""
        self._ran('sleeps')
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self._ran('sleeps cancelled')
            raise
        return 'slept'

    @background
    def bg_interrupted(self) -> None:
        self._ran('bg_interrupted')
        raise KeyboardInterrupt()

    @background
    async def bg_calls_page(self, value: int) -> object:
        """Calls the page from the transport's thread, as a background method may."""
        assert self.channel is not None
        self._ran('bg_calls_page')
        return await self.channel.call('double', value)

    @background
    def bg_call_sync(self, value: int) -> object:
        """What a background method must not do: ``call_sync`` would wait for itself."""
        assert self.channel is not None
        self._ran('bg_call_sync')
        try:
            return self.channel.call_sync('double', value)
        except BaseException as exc:
            self.raised.append(exc)
            raise

    async def consume(self, stream: MetaGenerator) -> list:
        """An ordinary method reading a page -> kernel stream on the caller's loop."""
        self.streams.append(('consume', asyncio.get_running_loop()))
        self._ran('consume')
        assert isinstance(stream, MetaGenerator)
        digest = hashlib.sha256()
        size = 0
        async for chunk in stream:
            digest.update(chunk)
            size += len(chunk)
        return [size, digest.hexdigest(), stream.received]

    @background
    async def bg_consume(self, stream: MetaGenerator) -> list:
        """The same on the transport's loop."""
        self.streams.append(('bg_consume', asyncio.get_running_loop()))
        self._ran('bg_consume')
        data = await stream.join()
        return [len(data), hashlib.sha256(data).hexdigest(), stream.received]

    async def first_chunks(self, stream: MetaGenerator, count: int) -> int:
        """An ordinary method that leaves a page -> kernel stream early (which cancels it)."""
        self._ran('first_chunks')
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == count:
                break
        return seen

    def produce(self, size: int, seed: int) -> Source:
        """An ordinary method returning a stream whose generator awaits the caller's loop."""
        loop = asyncio.get_running_loop()

        async def chunks() -> AsyncIterator[bytes]:
            rng = random.Random(seed)
            for at in range(0, size, 100_000):
                self.streams.append(('produce', asyncio.get_running_loop()))
                await asyncio.sleep(0.001)
                yield rng.randbytes(min(100_000, size - at))

        assert loop is asyncio.get_running_loop()
        return Source(
            chunks(),
            total=size,
            progress=lambda p: self.produced.append((threading.get_ident(), p)),
        )


async def connect(page: Page, server: jchannel_http.Server) -> jchannel_http.Channel:
    channel = await open_channel(page, server, PAGE_SIDE, Kernel(), 15)
    handler_of(channel, Kernel).channel = channel
    return channel


async def block(seconds: float, compute: bool = False) -> tuple[float, float]:
    """Block the running loop for ``seconds`` (as a computing cell does): in ``time.sleep``,
    or with ``compute`` in a pure-Python loop that holds the GIL; its start and end."""
    start = time.time()
    if compute:
        count = 0
        while time.time() < start + seconds:
            count += 1
    else:
        time.sleep(seconds)
    return start, time.time()


async def answers(page: Page, ids: list[str], ms: int = ANSWER_MS) -> dict[str, list[dict]]:
    """The page's outcomes of the kicked calls ``ids``, once each has one (else fail naming the
    missing ones)."""
    try:
        await page.wait_for_function(
            '(ids) => ids.every((id) => window.answers[id] !== undefined)', arg=ids, timeout=ms
        )
    except Exception as exc:
        got = await page.evaluate('Object.keys(window.answers)')
        raise AssertionError(f'no answer within {ms} ms for {sorted(set(ids) - set(got))}') from exc
    return await page.evaluate(
        '(ids) => Object.fromEntries(ids.map((id) => [id, answers[id]]))', ids
    )


def transport_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == TRANSPORT_THREAD]


def library_tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    """The tasks of ``loop`` whose coroutine is one of the package's."""
    found = []
    for task in asyncio.all_tasks(loop):
        coroutine = task.get_coro()
        code = getattr(coroutine, 'cr_code', None) or getattr(coroutine, 'gi_code', None)
        if code is not None and str(Path(code.co_filename).resolve()).startswith(PACKAGE_DIR):
            found.append(task)
    return found


# -- handlers while the caller's loop is blocked ------------------------------------------------


@pytest.mark.parametrize('compute', [False, True], ids=['sleeping', 'computing'])
async def test_background_methods_answer_while_the_loop_is_blocked_ordinary_ones_after(
    server, page, compute
) -> None:
    channel = await connect(page, server)
    kernel = handler_of(channel, Kernel)
    loop = asyncio.get_running_loop()
    before = server.status()
    assert before['connected'] and before['transport'] is not None
    calls = {'s': 'bg_sync', 'a': 'bg_async', 'o': 'ordinary', 'oa': 'ordinary_async'}
    await page.evaluate(
        '([calls, ms]) => { for (const [id, name] of Object.entries(calls)) kick(id, name, [7], ms); }',
        [calls, KICK_MS],
    )
    start, end = await block(BLOCK, compute)
    got = await answers(page, list(calls))
    for id, name in calls.items():
        assert [outcome['ok'] for outcome in got[id]] == [[name, 22]], id
    for id in ('s', 'a'):
        at = got[id][0]['at'] / 1000
        assert start < at < end, f'{calls[id]} answered {at - start:.3f} s into a {BLOCK} s block'
    for id in ('o', 'oa'):
        at = got[id][0]['at'] / 1000
        assert at >= end - 0.001, f'{calls[id]} answered {end - at:.3f} s before the block ended'
    for name in ('bg_sync', 'bg_async'):
        [run] = kernel.runs_of(name)
        assert run.thread_name == TRANSPORT_THREAD and run.loop is not loop
        assert start < run.at < end
    for name in ('ordinary', 'ordinary_async'):
        [run] = kernel.runs_of(name)
        assert run.thread == threading.get_ident() and run.loop is loop
        assert run.at >= end
    after = server.status()
    assert (after['transport'], after['client'], after['session']) == (
        before['transport'],
        before['client'],
        before['session'],
    )
    assert page.errors == []


async def test_a_background_method_calls_the_page_while_the_loop_is_blocked(server, page) -> None:
    channel = await connect(page, server)
    kernel = handler_of(channel, Kernel)
    await page.evaluate('(ms) => kick("p", "bg_calls_page", [21], ms)', KICK_MS)
    start, end = await block(BLOCK)
    got = await answers(page, ['p'])
    assert [outcome['ok'] for outcome in got['p']] == [42]
    assert start < got['p'][0]['at'] / 1000 < end
    [run] = kernel.runs_of('bg_calls_page')
    assert run.thread_name == TRANSPORT_THREAD


async def test_interrupt_and_exit_in_a_method_end_only_that_call(server, page) -> None:
    channel = await connect(page, server)
    kernel = handler_of(channel, Kernel)
    calls = {'i': 'interrupted', 'e': 'exits', 'b': 'bg_interrupted'}
    await page.evaluate(
        '(calls) => { for (const [id, name] of Object.entries(calls)) kick(id, name, [], 0); }',
        calls,
    )
    got = await answers(page, list(calls))
    assert {id: [outcome['error'][:2] for outcome in got[id]] for id in calls} == {
        'i': [['KernelError', 'KeyboardInterrupt']],
        'e': [['KernelError', 'SystemExit']],
        'b': [['KernelError', 'KeyboardInterrupt']],
    }
    assert sorted(run.method for run in kernel.runs) == sorted(calls.values())
    assert await channel.call('double', 3) == 6  # the loop and the channel still work
    await page.evaluate('() => kick("after", "ordinary", [1], 0)')
    assert (await answers(page, ['after']))['after'][0]['ok'] == ['ordinary', 4]


def post_json(url: str, body: object) -> tuple[object, float]:
    """POST ``body`` as JSON with the token (blocking, for a thread); the answer and when."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/json'},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read()), time.time()


async def test_direct_http_calls_reach_background_methods_while_the_loop_is_blocked(
    server,
) -> None:
    channel = jchannel_http.Channel(server, PAGE_SIDE, name='direct')
    kernel = Kernel()
    channel.handler = kernel
    answered: dict[str, tuple[object, float]] = {}

    def call(method: str) -> None:
        time.sleep(KICK_MS / 1000)
        answered[method] = post_json(f'{server.url}/channels/direct/call/{method}', [4])

    threads = [threading.Thread(target=call, args=(m,)) for m in ('bg_sync', 'ordinary')]
    for thread in threads:
        thread.start()
    start, end = await block(BLOCK)
    for _ in range(300):
        if len(answered) == 2:
            break
        await asyncio.sleep(0.05)
    for thread in threads:
        thread.join(5)
    assert answered['bg_sync'][0] == {'result': ['bg_sync', 13]}
    assert start < answered['bg_sync'][1] < end
    assert answered['ordinary'][0] == {'result': ['ordinary', 13]}
    assert answered['ordinary'][1] >= end
    assert kernel.runs_of('ordinary')[0].thread == threading.get_ident()


async def test_calls_from_a_loop_of_another_thread(server, page) -> None:
    """Kernel code on a third loop (``asyncio.run`` in a thread): calls and streams work,
    and its generator and progress stay on that loop."""
    channel = await connect(page, server)
    rng = random.Random(5)
    parts = [rng.randbytes(100_000) for _ in range(4)]

    async def elsewhere() -> list:
        here = asyncio.get_running_loop()
        seen: list[bool] = []
        progress: list[int] = []

        async def chunks() -> AsyncIterator[bytes]:
            for part in parts:
                seen.append(asyncio.get_running_loop() is here)
                await asyncio.sleep(0.001)
                yield part

        doubled = await channel.call('double', 8)
        digest = await channel.call_with_stream(
            'digest', chunks(), progress=lambda p: progress.append(threading.get_ident())
        )
        with pytest.raises(FrontendError):
            await channel.call('fail', 'there')
        return [doubled, digest, all(seen) and len(seen) == 4, set(progress)]

    main_loop_before = asyncio.get_running_loop()
    doubled, digest, on_its_loop, progress_threads = await asyncio.to_thread(
        asyncio.run, elsewhere()
    )
    assert doubled == 16
    assert digest == [400_000, hashlib.sha256(b''.join(parts)).hexdigest()]
    assert on_its_loop
    assert len(progress_threads) == 1 and threading.get_ident() not in progress_threads
    assert asyncio.get_running_loop() is main_loop_before
    assert await channel.call('double', 1) == 2


# -- call_sync ---------------------------------------------------------------------------------


async def test_call_sync_from_a_thread_and_from_the_loop_it_blocks(server, page) -> None:
    channel = await connect(page, server)
    kernel = handler_of(channel, Kernel)
    assert await asyncio.to_thread(channel.call_sync, 'double', 21) == 42
    assert channel.call_sync('double', 4) == 8  # on the loop's own thread, which it blocks
    # While call_sync blocks the loop, the page's background call is answered.
    await page.evaluate('(ms) => kick("s", "bg_sync", [1], ms)', KICK_MS)
    start = time.time()
    assert channel.call_sync('wait', int(BLOCK * 1000), 'waited') == 'waited'
    end = time.time()
    assert end - start >= BLOCK - 0.01
    got = await answers(page, ['s'])
    assert [outcome['ok'] for outcome in got['s']] == [['bg_sync', 4]]
    assert start < got['s'][0]['at'] / 1000 < end
    assert kernel.runs_of('bg_sync')[0].thread_name == TRANSPORT_THREAD
    # A page error is the FrontendError that call raises, from the loop's thread or another.
    with pytest.raises(FrontendError) as by_call:
        await channel.call('fail', 'boom')
    with pytest.raises(FrontendError) as on_loop:
        channel.call_sync('fail', 'boom')
    with pytest.raises(FrontendError) as in_thread:
        await asyncio.to_thread(channel.call_sync, 'fail', 'boom')
    for raised in (on_loop, in_thread):
        assert (raised.value.type, raised.value.detail) == ('RangeError', 'boom')
        assert str(raised.value) == str(by_call.value)
    with pytest.raises(FrontendError) as missing:
        channel.call_sync('nothing_here')
    assert missing.value.type == 'AttributeError'
    with pytest.raises(TypeError):
        channel.call_sync(3)  # type: ignore[arg-type]


async def test_call_sync_in_an_ordinary_method_and_page_methods_that_call_back(
    server, page
) -> None:
    channel = await connect(page, server)
    kernel = handler_of(channel, Kernel)
    await page.evaluate('() => kick("a", "asks_the_page", [9], 0)')
    assert (await answers(page, ['a']))['a'][0]['ok'] == ['asked', 18]
    await page.evaluate('() => kick("c", "calls_the_page", [11], 0)')
    assert (await answers(page, ['c']))['c'][0]['ok'] == ['called', 22]
    assert kernel.runs_of('asks_the_page')[0].thread == threading.get_ident()
    # A page method may call a background method back while call_sync blocks the loop ...
    assert channel.call_sync('relay', 'bg_sync', 2) == ['bg_sync', 7]
    # ... but an ordinary one waits for the loop, which call_sync blocks: the deadline ends the
    # wait, and the page's call is answered once the loop runs again.
    with pytest.raises(TimeoutError):
        channel.call_sync('relay', 'ordinary', 3, deadline=1)
    await page.wait_for_function('window.relayed?.[0] === "ordinary"', timeout=ANSWER_MS)
    assert await page.evaluate('window.relayed') == ['ordinary', 10]
    assert [run.method for run in kernel.runs].count('ordinary') == 1


async def test_call_sync_deadline_is_a_timeout_error_as_for_call(server, page) -> None:
    channel = await connect(page, server)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await channel.call('wait', 5000, 'late', deadline=0.5)
    by_call = time.monotonic() - started
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        channel.call_sync('wait', 5000, 'late', deadline=0.5)
    on_loop = time.monotonic() - started
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(channel.call_sync, 'wait', 5000, 'late', deadline=0.5)
    in_thread = time.monotonic() - started
    for elapsed in (by_call, on_loop, in_thread):
        assert 0.45 <= elapsed < 3, elapsed
    assert channel.call_sync('wait', 10, 'in time', deadline=5) == 'in time'
    # A deadline that passes while the loop is blocked ends the call on the transport meanwhile.
    late = channel.call('wait', 5000, 'late', deadline=0.5)
    await asyncio.sleep(0)
    await block(1.5)
    assert server.status()['pending_calls'] == 0
    with pytest.raises(TimeoutError):
        await late
    with pytest.raises(ValueError):
        channel.call_sync('double', 1, deadline=-1)


async def test_call_sync_without_a_page_is_a_state_error_after_the_timeout() -> None:
    server = jchannel_http.Server(token=TOKEN, heartbeat=1)
    channel = jchannel_http.Channel(server, '(channel) => {}')
    with pytest.raises(StateError, match='start'):
        channel.call_sync('double', 1)  # not started
    await server.start()
    try:
        started = time.monotonic()
        with pytest.raises(StateError):
            await channel.call('double', 1, timeout=0.5)
        by_call = time.monotonic() - started
        started = time.monotonic()
        with pytest.raises(StateError):
            channel.call_sync('double', 1, timeout=0.5)
        on_loop = time.monotonic() - started
        started = time.monotonic()
        with pytest.raises(StateError):
            await asyncio.to_thread(channel.call_sync, 'double', 1, timeout=0.5)
        in_thread = time.monotonic() - started
        for elapsed in (by_call, on_loop, in_thread):
            assert 0.45 <= elapsed < 4, elapsed
        # A deadline shorter than the timeout ends the wait for a page, as it does for call.
        with pytest.raises(StateError, match='deadline') as by_call_deadline:
            await channel.call('double', 1, timeout=5, deadline=0.3)
        started = time.monotonic()
        with pytest.raises(StateError, match='deadline') as on_loop_deadline:
            channel.call_sync('double', 1, timeout=5, deadline=0.3)
        assert time.monotonic() - started < 3
        assert str(on_loop_deadline.value) == str(by_call_deadline.value)
    finally:
        await server.stop()
    with pytest.raises(StateError):
        channel.call_sync('double', 1)  # stopped


async def test_call_sync_in_a_background_method_raises_state_error(server, page, caplog) -> None:
    channel = await connect(page, server)
    kernel = handler_of(channel, Kernel)
    with caplog.at_level(logging.WARNING, logger='jchannel_http'):
        await page.evaluate('() => kick("c", "bg_call_sync", [5], 0)')
        got = await answers(page, ['c'])
    [outcome] = got['c']
    name, kind, detail = outcome['error']
    assert (name, kind) == ('KernelError', 'StateError')
    assert 'wait for itself' in detail and "transport's own thread" in detail, detail
    [raised] = kernel.raised
    assert isinstance(raised, StateError) and str(raised) == detail
    assert kernel.runs_of('bg_call_sync')[0].thread_name == TRANSPORT_THREAD
    assert channel.call_sync('double', 2) == 4  # the channel still works


async def test_call_sync_on_the_loop_without_a_transport_thread(page) -> None:
    async with jchannel_http.Server(token=TOKEN, heartbeat=1, transport_thread=False) as server:
        assert transport_threads() == []
        channel = await connect(page, server)
        with pytest.raises(StateError, match='transport_thread=False'):
            channel.call_sync('double', 1)
        assert await asyncio.to_thread(channel.call_sync, 'double', 5) == 10
        assert await channel.call('double', 6) == 12
        # Without a thread of its own, a background method runs on the one loop.
        await page.evaluate('() => kick("s", "bg_sync", [2], 0)')
        got = await answers(page, ['s'])
        assert [outcome['ok'] for outcome in got['s']] == [['bg_sync', 7]]
        run = handler_of(channel, Kernel).runs_of('bg_sync')[0]
        assert run.loop is asyncio.get_running_loop()


# -- streams and progress across the loops ------------------------------------------------------


async def test_a_page_stream_is_consumed_by_an_ordinary_method_on_the_callers_loop(
    server, page
) -> None:
    channel = await connect(page, server)
    kernel = handler_of(channel, Kernel)
    size = 2 * (1 << 20) + 3
    for method in ('consume', 'bg_consume'):
        got, expected = await page.evaluate(
            """async ([method, size]) => {
            const bytes = makeBytes(size, 5);
            const answer = await channel.callWithStream(method, chunksOf(bytes, 300000));
            return [answer, [size, await hex(bytes), size]];
        }""",
            [method, size],
        )
        assert got == expected, method
    assert [name for name, _ in kernel.streams] == ['consume', 'bg_consume']
    assert kernel.streams[0][1] is asyncio.get_running_loop()
    assert kernel.streams[1][1] is not asyncio.get_running_loop()


async def test_a_page_stream_waits_for_an_ordinary_method_while_the_loop_is_blocked(
    server, page
) -> None:
    kernel = handler_of(await connect(page, server), Kernel)
    size = (1 << 20) + 11
    await page.evaluate(
        """([size, ms]) => setTimeout(async () => {
            const bytes = makeBytes(size, 9);
            window.streamed = [await channel.callWithStream('consume', chunksOf(bytes, 200000)),
                               [size, await hex(bytes), size]];
        }, ms)""",
        [size, KICK_MS],
    )
    _, end = await block(BLOCK)
    await page.wait_for_function('window.streamed !== undefined', timeout=ANSWER_MS)
    got, expected = await page.evaluate('window.streamed')
    assert got == expected
    [run] = kernel.runs_of('consume')
    assert run.at >= end and run.thread == threading.get_ident()


async def test_call_with_stream_reads_its_generator_on_the_callers_loop(server, page) -> None:
    channel = await connect(page, server)
    loop = asyncio.get_running_loop()
    caller = threading.get_ident()
    ticks: asyncio.Queue[int] = asyncio.Queue()  # an object of the caller's loop
    loops: list[asyncio.AbstractEventLoop] = []
    progress_threads: list[int] = []
    sent: list[Progress] = []
    rng = random.Random(3)
    parts = [rng.randbytes(150_000) for _ in range(8)]
    size = sum(map(len, parts))

    async def chunks() -> AsyncIterator[bytes]:
        for part in parts:
            loops.append(asyncio.get_running_loop())
            await asyncio.sleep(0.005)
            await ticks.get()
            yield part

    async def tick() -> None:
        for i in range(len(parts)):
            await ticks.put(i)

    def progress(snapshot: Progress) -> None:
        progress_threads.append(threading.get_ident())
        sent.append(snapshot)

    ticking = asyncio.create_task(tick())
    answer = await channel.call_with_stream(
        'digest', chunks(), timeout=10, total=size, progress=progress
    )
    await ticking
    assert answer == [size, hashlib.sha256(b''.join(parts)).hexdigest()]
    assert len(loops) == len(parts) and all(seen is loop for seen in loops)
    assert progress_threads and set(progress_threads) == {caller}
    assert sent[-1].finished and sent[-1].done == size and sent[-1].total == size
    assert sum(snapshot.delta for snapshot in sent) == size


async def test_progress_feed_and_pipe_across_the_loops(server, page) -> None:
    channel = await connect(page, server)
    loop = asyncio.get_running_loop()
    caller = threading.get_ident()
    rng = random.Random(4)
    parts = [rng.randbytes(200_000) for _ in range(6)]
    size = sum(map(len, parts))
    loops: list[asyncio.AbstractEventLoop] = []

    async def chunks() -> AsyncIterator[bytes]:
        for part in parts:
            loops.append(asyncio.get_running_loop())
            await asyncio.sleep(0.002)
            yield part

    feed = ProgressFeed()
    seen: list[Progress] = []

    async def watch() -> None:
        async for snapshot in feed:
            seen.append(snapshot)

    watching = asyncio.create_task(watch())
    answer = await channel.call_with_stream('digest', chunks(), total=size, progress=feed)
    await asyncio.wait_for(watching, 10)
    assert answer == [size, hashlib.sha256(b''.join(parts)).hexdigest()]
    assert seen and seen[-1].finished and seen[-1].done == size
    assert sum(snapshot.delta for snapshot in seen) == size
    # pipe: a Source's generator and progress on the caller's loop, the stream back read here
    loops.clear()
    threads: list[int] = []
    back = await channel.pipe(
        Source(chunks(), total=size, progress=lambda p: threads.append(threading.get_ident()))
    )
    received: list[int] = []
    back.on_progress = lambda p: received.append(threading.get_ident())
    assert await back.join() == b''.join(parts)
    assert loops and all(seen_loop is loop for seen_loop in loops)
    assert threads and set(threads) == {caller}
    assert received and set(received) == {caller}


async def test_a_stream_an_ordinary_method_returns_is_read_on_its_loop(server, page) -> None:
    channel = await connect(page, server)
    kernel = handler_of(channel, Kernel)
    size = 700_001
    got = await page.evaluate(
        """async (size) => {
        const stream = await channel.call('produce', size, 8);
        const data = await stream.join();
        return [stream.total, data.length, await hex(data)];
    }""",
        size,
    )
    rng = random.Random(8)
    made = b''.join(rng.randbytes(min(100_000, size - at)) for at in range(0, size, 100_000))
    assert got == [size, size, hashlib.sha256(made).hexdigest()]
    loops = [seen for name, seen in kernel.streams if name == 'produce']
    assert len(loops) == 8 and all(seen is asyncio.get_running_loop() for seen in loops)
    for _ in range(100):
        if kernel.produced and kernel.produced[-1][1].finished:
            break
        await asyncio.sleep(0.05)
    assert {thread for thread, _ in kernel.produced} == {threading.get_ident()}
    last = kernel.produced[-1][1]
    assert last.finished and last.done == size and last.total == size


async def test_leaving_a_stream_early_on_the_callers_loop_stops_its_producer(server, page) -> None:
    channel = await connect(page, server)
    loop = asyncio.get_running_loop()
    # page -> kernel: an ordinary method leaves the page's endless stream after 3 chunks
    got = await page.evaluate("""async () => {
        const seen = await channel.callWithStream('first_chunks', endless(), 3);
        for (let i = 0; i < 200 && window.endlessClosed === 0; i++)
            await new Promise((r) => setTimeout(r, 50));
        return [seen, window.endlessClosed];
    }""")
    assert got == [3, 1]
    # kernel -> page: the page leaves the kernel's endless generator, closed on the caller's loop
    closed: list[asyncio.AbstractEventLoop] = []

    async def endless() -> AsyncIterator[bytes]:
        try:
            for i in range(100_000):
                await asyncio.sleep(0)
                yield bytes([i & 255]) * 65536
        finally:
            closed.append(asyncio.get_running_loop())

    assert await channel.call_with_stream('firstChunks', endless(), 3, timeout=10) == 3
    for _ in range(200):
        if closed:
            break
        await asyncio.sleep(0.05)
    assert closed == [loop]
    assert server.streams.status()['uploads'] == 0


async def test_call_sync_gives_a_stream_read_on_the_callers_loop(server, page) -> None:
    channel = await connect(page, server)
    size = 300_001
    stream = channel.call_sync('bytes', size, 6)
    assert isinstance(stream, MetaGenerator)
    data = await stream.join()
    expected = await page.evaluate('async (size) => hex(makeBytes(size, 6))', size)
    assert (len(data), hashlib.sha256(data).hexdigest()) == (size, expected)
    stream = await asyncio.to_thread(channel.call_sync, 'bytes', size, 6)
    assert isinstance(stream, MetaGenerator)
    assert await stream.join() == data


async def test_cancelling_a_call_task_cancels_the_call_on_the_transport(server, page) -> None:
    channel = await connect(page, server)
    task = channel.call('wait', 20_000, 'never')
    for _ in range(100):
        if server.status()['pending_calls'] == 1:
            break
        await asyncio.sleep(0.05)
    assert server.status()['pending_calls'] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if server.status()['pending_calls'] == 0:
            break
        await asyncio.sleep(0.05)
    assert server.status()['pending_calls'] == 0, 'the cancelled call still waits'
    assert await channel.call('double', 5) == 10


async def test_interrupting_call_sync_cancels_the_call(server, page) -> None:
    channel = await connect(page, server)
    assert threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as a kernel has it
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    try:
        started = time.monotonic()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            channel.call_sync('wait', 20_000, 'never')
        elapsed = time.monotonic() - started
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert 0.4 < elapsed < 5, elapsed
    for _ in range(100):
        if server.status()['pending_calls'] == 0:
            break
        await asyncio.sleep(0.05)
    assert server.status()['pending_calls'] == 0, 'the interrupted call still waits'
    assert channel.call_sync('double', 8) == 16


# -- the thread's life ---------------------------------------------------------------------------


async def test_stop_ends_the_thread_and_leaves_no_task_start_again_works(page) -> None:
    loop = asyncio.get_running_loop()
    server = jchannel_http.Server(token=TOKEN, heartbeat=1)
    channel = jchannel_http.Channel(server, PAGE_SIDE)
    kernel = Kernel()
    kernel.channel = channel
    channel.handler = kernel
    threads: list[threading.Thread] = []
    for round in range(2):
        await server.start()
        [thread] = transport_threads()
        assert thread not in threads, 'a new start has a new thread'
        threads.append(thread)
        await page.goto(server.page_url)
        assert await channel.open(timeout=15) == 'ready'
        pending = channel.call('wait', 300, 'pending')
        await asyncio.sleep(0)
        assert library_tasks(loop), 'a call in flight is a task of the package'
        assert await pending == 'pending'
        await page.evaluate('(ms) => kick("s" + ms, "bg_sync", [ms], ms)', 100 + round)
        start, end = await block(1.0)
        got = await answers(page, [f's{100 + round}'])
        assert got[f's{100 + round}'][0]['ok'] == ['bg_sync', 3 * (100 + round) + 1]
        assert start < got[f's{100 + round}'][0]['at'] / 1000 < end
        assert channel.call_sync('double', round) == 2 * round
        await server.stop()
        assert not thread.is_alive()
        assert transport_threads() == []
        assert library_tasks(loop) == []
    assert page.errors == []


async def test_two_servers_have_a_thread_each_and_stop_only_their_own(server, browser) -> None:
    pages = [await new_page(browser), await new_page(browser)]
    async with jchannel_http.Server(token=TOKEN, heartbeat=1) as other:
        channels = [await connect(pages[0], server), await connect(pages[1], other)]
        assert len(transport_threads()) == 2
        for page in pages:
            await page.evaluate('(ms) => kick("s", "bg_sync", [3], ms)', KICK_MS)
        start, end = await block(BLOCK)
        for page in pages:
            [outcome] = (await answers(page, ['s']))['s']
            assert outcome['ok'] == ['bg_sync', 10] and start < outcome['at'] / 1000 < end
        runs = [handler_of(channel, Kernel).runs_of('bg_sync')[0] for channel in channels]
        assert runs[0].thread != runs[1].thread
        await server.stop()
        assert [thread.ident for thread in transport_threads()] == [runs[1].thread]
        assert await channels[1].call('double', 4) == 8
        assert channels[1].call_sync('double', 5) == 10
    assert transport_threads() == []


async def test_stop_with_calls_in_flight_fails_them_and_ends_the_thread(server, page) -> None:
    channel = await connect(page, server)
    loop = asyncio.get_running_loop()
    [thread] = transport_threads()
    pending = channel.call('wait', 60_000, 'never')
    waiting = asyncio.create_task(asyncio.to_thread(channel.call_sync, 'wait', 60_000, 'never'))
    await asyncio.sleep(0.3)
    await server.stop()
    with pytest.raises(StateError):
        await pending
    with pytest.raises(StateError):
        await asyncio.wait_for(waiting, 10)
    assert not thread.is_alive() and transport_threads() == []
    assert library_tasks(loop) == []


async def test_stop_while_an_ordinary_method_runs_cancels_it_and_leaves_no_task(
    server, page, caplog
) -> None:
    channel = await connect(page, server)
    kernel = handler_of(channel, Kernel)
    loop = asyncio.get_running_loop()
    await page.evaluate('() => kick("slow", "sleeps", [30], 0)')
    for _ in range(200):
        if kernel.runs_of('sleeps'):
            break
        await asyncio.sleep(0.05)
    assert kernel.runs_of('sleeps'), 'the page call did not reach the method'
    assert library_tasks(loop), 'the running method is a task of the package'
    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        await server.stop()
        assert library_tasks(loop) == [], 'stop() returned with tasks of the package left'
        await asyncio.sleep(0.3)
    assert [run.method for run in kernel.runs] == ['sleeps', 'sleeps cancelled']
    assert transport_threads() == []
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == [], [r.getMessage() for r in problems]


@pytest.mark.parametrize('method', ['quit', 'bg_quit'])
async def test_a_handler_method_may_stop_the_server(server, page, caplog, method) -> None:
    """A page's stop button: the server stops entirely (thread, port, tasks); the call that
    stopped it ends with the others, and the page hears of it."""
    channel = await connect(page, server)
    kernel = handler_of(channel, Kernel)
    kernel.server = server
    loop = asyncio.get_running_loop()
    port = server.port
    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        await page.evaluate('(method) => kick("q", method, [], 0)', method)
        for _ in range(200):
            if not server.running and not transport_threads():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
    assert kernel.runs[0].method == method
    assert not server.running and transport_threads() == [], 'the transport thread is left'
    assert library_tasks(loop) == []
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == [], [r.getMessage() for r in problems]
    with pytest.raises(OSError):  # the port is released
        _, writer = await asyncio.open_connection('127.0.0.1', port)
        writer.close()
    [outcome] = (await answers(page, ['q']))['q']
    assert 'error' in outcome, outcome


# -- the hop itself, without a page -------------------------------------------------------------


async def test_work_cancelled_before_it_starts_on_the_other_loop_is_closed_quietly() -> None:
    """A cross() cancelled while its start waits in the other loop's queue: the work never runs,
    and is closed (no 'coroutine ... was never awaited' warning, no error)."""
    thread = TransportThread('jchannel_http probe')
    other = thread.start()
    ran: list[int] = []

    async def work() -> int:
        ran.append(1)
        return 1

    try:
        other.call_soon_threadsafe(time.sleep, 0.3)  # the other loop is busy: start waits
        crossing = asyncio.create_task(cross(other, work()))
        await asyncio.sleep(0.02)
        crossing.cancel()  # queued right behind the start
        with pytest.raises(asyncio.CancelledError):
            await crossing
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            await asyncio.sleep(0.5)
            gc.collect()
        assert ran == [], 'the cancelled work ran'
        assert [str(w.message) for w in caught] == []
        assert await cross(other, work()) == 1 and ran == [1]  # the next one runs, once
    finally:
        thread.stop()


# -- randomized --------------------------------------------------------------------------------

SEED = int(os.environ.get('JCHANNEL_SEED') or random.SystemRandom().randrange(2**32))
ROUNDS = 10
KINDS = ('bg_sync', 'bg_async', 'ordinary', 'ordinary_async')
STREAM_KINDS = ('consume', 'bg_consume')


async def test_randomized_background_and_ordinary_calls_with_blocks(server, page) -> None:
    print(f'\nJCHANNEL_SEED={SEED}')
    rng = random.Random(SEED)
    channel = await connect(page, server)
    kernel = handler_of(channel, Kernel)
    loop = asyncio.get_running_loop()
    session = server.status()['session']
    expected: dict[str, Any] = {}
    blocks: list[tuple[float, float]] = []
    """When the loop was blocked (time.sleep, call_sync on its thread): no ordinary method ran."""
    kernel_calls: list[tuple[asyncio.Future[Any], int]] = []
    for round in range(ROUNDS):
        ids = []
        for n in range(rng.randint(4, 12)):
            id, delay = f'r{round}n{n}', rng.randrange(0, 250)
            ids.append(id)
            if rng.random() < 0.15:
                kind, size = rng.choice(STREAM_KINDS), rng.randrange(0, 300_000)
                expected[id] = kind
                await page.evaluate(
                    '([id, kind, size, seed, ms]) => kickStream(id, kind, size, seed, ms)',
                    [id, kind, size, rng.randrange(1, 2**31), delay],
                )
                continue
            kind, value = rng.choice(KINDS), rng.randrange(1000)
            expected[id] = [kind, value * 3 + 1]
            await page.evaluate(
                '([id, kind, value, ms]) => kick(id, kind, [value], ms)', [id, kind, value, delay]
            )
        for _ in range(rng.randint(0, 3)):
            value = rng.randrange(1000)
            kernel_calls.append((channel.call('double', value), 2 * value))
        if rng.random() < 0.3:
            value = rng.randrange(1000)
            in_thread = asyncio.ensure_future(asyncio.to_thread(channel.call_sync, 'double', value))
            kernel_calls.append((in_thread, 2 * value))
        if rng.random() < 0.7:
            blocks.append(await block(rng.uniform(0.05, 0.6)))
        else:
            await asyncio.sleep(rng.uniform(0, 0.3))
        if rng.random() < 0.3:
            value, start = rng.randrange(1000), time.time()
            assert channel.call_sync('wait', rng.randrange(0, 300), value) == value
            blocks.append((start, time.time()))
        await answers(page, ids, 20_000)
    for future, value in kernel_calls:
        assert await asyncio.wait_for(future, 20) == value, f'seed {SEED}'
    await asyncio.sleep(0.5)  # room for an answer that would come twice
    got = await page.evaluate('window.answers')
    assert set(got) == set(expected), f'seed {SEED}'
    for id, outcomes in got.items():
        assert len(outcomes) == 1, f'seed {SEED}: call {id} was answered {len(outcomes)} times'
        [outcome] = outcomes
        want = outcome['expected'] if isinstance(expected[id], str) else expected[id]
        assert outcome.get('ok', outcome.get('error')) == want, f'seed {SEED}: call {id}'
    ran = [run.method for run in kernel.runs]
    for kind in KINDS + STREAM_KINDS:
        calls = sum(1 for value in expected.values() if kind in (value, value[0]))
        assert ran.count(kind) == calls, f'seed {SEED}: {kind} ran {ran.count(kind)}, not {calls}'
    for run in kernel.runs:
        if run.method.startswith('bg_'):
            assert run.thread_name == TRANSPORT_THREAD, f'seed {SEED}'
        else:
            assert run.loop is loop, f'seed {SEED}'
            inside = [b for b in blocks if b[0] < run.at < b[1]]
            assert not inside, f'seed {SEED}: {run.method} ran during a block of the loop'
    assert server.status()['session'] == session, f'seed {SEED}: the page was replaced'
    assert server.status()['pending_calls'] == 0
    assert server.streams.status()['uploads'] == 0
    assert page.errors == []
