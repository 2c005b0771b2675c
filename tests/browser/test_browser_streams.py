"""Byte streams both ways between a real server and the real client in headless Chromium."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Page

import jchannel_http
from jchannel_http import FrontendError, Progress
from support.chromium import handler_of, open_channel
from support.nginx import Nginx
from support.proxies import CutProxy
from support.stream_page import PAGE_SIDE, KernelSide, seeded_chunks, seeded_digest, seeded_stream
from support.waiting import wait_until

MiB = 1 << 20


async def connect(page: Page, server: jchannel_http.Server) -> jchannel_http.Channel:
    return await open_channel(page, server, PAGE_SIDE, KernelSide(), 10)


async def test_64_mib_each_way_checked_by_sha256(server, page) -> None:
    channel = await connect(page, server)
    size = 64 * MiB
    sent: list[Progress] = []
    answer = await channel.call_with_stream(
        'digest', seeded_stream(size, 7), timeout=30, total=size, progress=sent.append
    )
    assert answer == [size, seeded_digest(size, 7), size, size]
    assert sent[-1].finished and sent[-1].done == size and sent[-1].total == size
    assert sum(p.delta for p in sent) == size
    # page -> kernel: the page makes the bytes, both sides hash them
    got, expected = await page.evaluate(
        """async (size) => {
        const bytes = t.makeBytes(size, 5);
        const progress = new jchannel.ProgressFeed();
        const seen = (async () => { let last = null; for await (const p of progress) last = p; return last; })();
        const source = new jchannel.StreamSource(t.chunksOf(bytes, 3 << 20),
                                                 { total: size, progress: progress.callback });
        const answer = await channel.callWithStream('digest', source);
        const last = await seen;
        return [[...answer, last.done, last.finished], [size, await t.hex(bytes), size, size, size, true]];
    }""",
        size,
    )
    assert got == expected
    assert server.streams.status() == {'uploads': 0, 'downloads': 0, 'held_bytes': 0}
    assert page.errors == []


async def test_handlers_return_streams_both_ways(server, page) -> None:
    channel = await connect(page, server)
    size = 3 * MiB + 17
    stream = await channel.call('produce', size, 11, 100_000)
    assert isinstance(stream, jchannel_http.MetaGenerator)
    digest = await KernelSide().digest(stream)
    assert digest[:2] == [size, await page.evaluate('t.hex(window.lastProduced)')]
    answer = await page.evaluate(
        """async (size) => {
        const stream = await channel.call('produce', size, 3, 70000);
        const data = await stream.join();
        return [stream instanceof jchannel.MetaGenerator, data.length, await t.hex(data)];
    }""",
        size,
    )
    assert answer == [True, size, seeded_digest(size, 3, 70000)]


@pytest.mark.parametrize('size', [0, 1, 512 * 1024, 512 * 1024 + 1, 5 * MiB + 3])
async def test_pipe_round_trips_both_ways(server, page, size) -> None:
    channel = await connect(page, server)
    back = await channel.pipe(seeded_stream(size, size, 300_000), timeout=30)
    assert await back.join() == b''.join(seeded_chunks(size, size, 300_000))
    same = await page.evaluate(
        """async (size) => {
        const bytes = t.makeBytes(size, 9);
        const back = await channel.pipe(t.chunksOf(bytes, 200000));
        const data = await back.join();
        return data.length === size && await t.hex(data) === await t.hex(bytes);
    }""",
        size,
    )
    assert same is True


def text_chunks(*parts: str):
    async def generate():
        for part in parts:
            yield part.encode()

    return generate()


LIMIT_CASES = [
    (['a', '', 'bcd', '', 'efghijk'], 4, ['abcd', 'efgh', 'ijk']),
    (['abcd', '', 'efghij', '', 'klmnopqrst'], 4, ['abcd', 'efgh', 'ijkl', 'mnop', 'qrst']),
]
SEPARATOR_CASES = [
    (
        ['  abcdef', '', '  ghijk  lmno', '', '  pqr  st  u'],
        '  ',
        ['  ', 'abcdef  ', 'ghijk  ', 'lmno  ', 'pqr  ', 'st  ', 'u'],
    ),
    (
        ['abcdef', '', 'ghijk  lmno', '', 'pqr  st  u'],
        '  ',
        ['abcdefghijk  ', 'lmnopqr  ', 'st  ', 'u'],
    ),
    (['line 1\r', '\nline 2\r\n', 'line 3'], '\r\n', ['line 1\r\n', 'line 2\r\n', 'line 3']),
]


async def test_by_limit_and_by_separator_at_chunk_boundaries_both_sides(server, page) -> None:
    channel = await connect(page, server)
    for parts, limit, expected in LIMIT_CASES:
        assert await channel.call_with_stream('limits', text_chunks(*parts), limit) == expected
        got = await page.evaluate(
            """([parts, limit]) => channel.callWithStream('limits',
            (async function* () { for (const p of parts) yield new TextEncoder().encode(p); })(),
            limit)""",
            [parts, limit],
        )
        assert got == expected
    for parts, separator, expected in SEPARATOR_CASES:
        got = await channel.call_with_stream('separated', text_chunks(*parts), separator)
        assert got == expected
        got = await page.evaluate(
            """([parts, separator]) => channel.callWithStream('separated',
            (async function* () { for (const p of parts) yield new TextEncoder().encode(p); })(),
            separator)""",
            [parts, separator],
        )
        assert got == expected
    errors = await page.evaluate("""async () => {
        const out = [];
        for (const [method, arg] of [['byLimit', 0], ['byLimit', 1.5], ['bySeparator', ''],
                                     ['bySeparator', 5]]) {
            const stream = await channel.pipe((async function* () { yield new Uint8Array(1); })());
            try { await stream[method](arg).next(); out.push('no error'); }
            catch (e) { out.push(e.constructor.name + ': ' + e.message); }
            await stream.return();
        }
        return out;
    }""")
    assert errors == [
        'Error: Limit must be positive',
        'TypeError: Limit must be an integer',
        'Error: Separator cannot be empty',
        'TypeError: Separator must be a string or an Uint8Array',
    ]


async def test_a_producer_error_reaches_the_consumer_both_ways(server, page) -> None:
    channel = await connect(page, server)
    handler = handler_of(channel, KernelSide)
    answer = await channel.call_with_stream('joinOrError', handler.failing(1000), timeout=10)
    assert answer == ['KernelError', 'ValueError', 'the kernel producer broke']
    stream = await channel.call('failing', 300_000)
    assert isinstance(stream, jchannel_http.MetaGenerator)
    with pytest.raises(FrontendError) as caught:
        await stream.join()
    assert (caught.value.type, caught.value.detail) == ('RangeError', 'the page producer broke')
    answer = await page.evaluate("""channel.callWithStream('join_or_error', (async function* () {
        yield new Uint8Array(10); throw new TypeError('page side broke'); })())""")
    assert answer == ['FrontendError', 'TypeError', 'page side broke']
    answer = await page.evaluate("""channel.call('failing', 5000).then((s) => s.join()).then(
        () => 'complete', (e) => [e.name, e.type, e.detail])""")
    assert answer == ['KernelError', 'ValueError', 'the kernel producer broke']


async def test_a_consumer_that_stops_early_stops_the_producer_both_ways(server, page) -> None:
    channel = await connect(page, server)
    handler = handler_of(channel, KernelSide)
    assert await channel.call_with_stream('firstChunks', handler.endless(), 3, timeout=10) == 3
    await asyncio.wait_for(handler.cancelled.wait(), 10)
    assert handler.finished == 1
    stream = await channel.call('endless')
    assert isinstance(stream, jchannel_http.MetaGenerator)
    seen = 0
    async for _ in stream:
        seen += 1
        if seen == 3:
            break
    for _ in range(200):
        if await page.evaluate('t.finished') == 1:
            break
        await asyncio.sleep(0.05)
    assert await page.evaluate('t.finished') == 1
    assert (
        await page.evaluate(
            "channel.call('endless').then(async (s) => {"
            ' let n = 0; for await (const c of s) { if (++n === 2) break; }'
            ' return n; })'
        )
        == 2
    )
    await wait_until(lambda: handler.finished == 2, 10)
    await wait_until(lambda: server.streams.status()['held_bytes'] == 0)


class CuttingKernelSide(KernelSide):
    """Cuts every connection when a stream it reads passes each quarter of its size."""

    def __init__(self, proxy: CutProxy, size: int) -> None:
        super().__init__()
        self.proxy = proxy
        self.marks = [size // 4, size // 2, 3 * size // 4]

    def cut_at_marks(self, progress: Progress) -> None:
        while self.marks and progress.done >= self.marks[0]:
            self.marks.pop(0)
            self.proxy.cut()

    async def digest(self, stream) -> list:
        stream.on_progress = self.cut_at_marks
        return await super().digest(stream)


async def test_cuts_in_the_middle_of_transfers_both_ways(page) -> None:
    size = 24 * MiB
    async with jchannel_http.Server(heartbeat=2) as server:
        proxy = await CutProxy(server.port).start()
        server._url = f'http://127.0.0.1:{proxy.port}'
        try:
            channel = await connect(page, server)
            cutter = CuttingKernelSide(proxy, size)
            channel.handler = cutter
            # kernel -> page: cut when the page has confirmed each quarter
            answer = await channel.call_with_stream(
                'digest', seeded_stream(size, 31), timeout=60, progress=cutter.cut_at_marks
            )
            assert isinstance(answer, list)
            assert answer[:2] == [size, seeded_digest(size, 31)]
            assert proxy.cuts == 3
            # page -> kernel: cut when the kernel's consumer has read each quarter
            cutter.marks = [size // 4, size // 2, 3 * size // 4]
            got, expected = await page.evaluate(
                """async (size) => {
                const bytes = t.makeBytes(size, 37);
                const answer = await channel.callWithStream('digest', t.chunksOf(bytes, 1 << 20));
                return [answer.slice(0, 2), [size, await t.hex(bytes)]];
            }""",
                size,
            )
            assert got == expected
            assert proxy.cuts == 6
            await wait_until(lambda: server.streams.status()['held_bytes'] == 0)
        finally:
            await proxy.stop()


async def test_through_nginx_with_a_1m_body_cap_and_a_smaller_one(page) -> None:
    # The default chunk size passes nginx's default 1 MiB cap; behind a 200 KiB cap the page
    # gets 413s and halves its chunks until they pass.
    size = 8 * MiB
    async with jchannel_http.Server(heartbeat=2) as server:
        nginx = await Nginx(server.port, ['1m', '200k']).start()
        try:
            for cap in ['1m', '200k']:
                server._url = nginx.url(cap)
                channel = await connect(page, server)
                answer = await channel.call_with_stream(
                    'digest', seeded_stream(size, 41), timeout=60
                )
                assert isinstance(answer, list)
                assert answer[:2] == [size, seeded_digest(size, 41)]
                got, expected = await page.evaluate(
                    """async (size) => {
                    const bytes = t.makeBytes(size, 43);
                    const answer = await channel.callWithStream('digest', t.chunksOf(bytes, 1 << 20));
                    return [answer.slice(0, 2), [size, await t.hex(bytes)]];
                }""",
                    size,
                )
                assert got == expected
                back = await channel.pipe(seeded_stream(MiB, 47), timeout=30)
                assert await back.join() == b''.join(seeded_chunks(MiB, 47))
                refused = nginx.refused_bodies()
                assert refused == 0 if cap == '1m' else refused >= 1
        finally:
            await nginx.stop()
