"""What page -> kernel streams hold when the page is the real client in headless Chromium:
``streams_buffer`` for all streams together, and an upload whose tab closed."""

from __future__ import annotations

import asyncio

import jchannel_http

TOKEN = 'test-token-0123456789'
KiB = 1024
MiB = 1024 * KiB


class SlowDigest:
    """Reads each stream slowly, so that the page's chunks pile up against the bounds."""

    async def digest(self, stream) -> list:
        import hashlib

        digest = hashlib.sha256()
        size = 0
        async for data in stream:
            digest.update(data)
            size += len(data)
            await asyncio.sleep(0.1)
        return [size, digest.hexdigest()]


async def test_a_page_uploading_several_streams_at_once_stays_within_streams_buffer(page) -> None:
    from support.stream_page import PAGE_SIDE

    limit, chunk_size = 3 * MiB, 256 * KiB
    async with jchannel_http.Server(
        token=TOKEN, heartbeat=1, stream_buffer=2 * MiB, streams_buffer=limit, chunk_size=chunk_size
    ) as server:
        await page.goto(server.page_url)
        channel = await server.open(PAGE_SIDE, timeout=10)
        channel.handler = SlowDigest()
        most = 0

        async def sample() -> None:
            nonlocal most
            while True:
                most = max(
                    most, server.streams.upload_budget.held, server.streams.status()['held_bytes']
                )
                await asyncio.sleep(0.002)

        sampler = asyncio.create_task(sample())
        try:
            got, expected = await asyncio.wait_for(
                page.evaluate("""async () => {
                const sizes = [6 << 20, 5 << 20, 4 << 20, 3 << 20];
                const all = sizes.map((size, i) => t.makeBytes(size, 40 + i));
                const answers = await Promise.all(all.map(
                    (bytes) => channel.callWithStream('digest', t.chunksOf(bytes, 1 << 20))));
                return [answers, await Promise.all(all.map(
                    async (bytes) => [bytes.length, await t.hex(bytes)]))];
            }"""),
                120,
            )
        finally:
            sampler.cancel()
        assert got == expected
        assert 0 < most <= limit + 4 * chunk_size  # one chunk over for each waiting consumer
        assert server.streams.upload_budget.held == 0
        assert page.errors == []


class Reader:
    """Reads a page -> kernel stream until it fails, noting when and how."""

    def __init__(self) -> None:
        self.reading = asyncio.Event()
        self.failed = asyncio.Event()
        self.error: BaseException | None = None
        self.failed_at = 0.0

    async def read(self, stream) -> int:
        size = 0
        try:
            async for data in stream:
                size += len(data)
                self.reading.set()
        except BaseException as exc:
            self.error = exc
            self.failed_at = asyncio.get_running_loop().time()
            self.failed.set()
            raise
        return size


async def test_a_handler_reading_an_upload_fails_once_the_tab_closed(browser) -> None:
    from support.stream_page import PAGE_SIDE

    async with jchannel_http.Server(token=TOKEN, heartbeat=1) as server:
        tab = await browser.new_page()
        await tab.goto(server.page_url)
        channel = await server.open(PAGE_SIDE, timeout=10)
        channel.handler = Reader()
        await tab.evaluate("""() => { window.upload = channel.callWithStream('read', (async function* () {
            for (;;) { yield new Uint8Array(64 << 10); await new Promise((r) => setTimeout(r, 20)); }
        })()); }""")
        await asyncio.wait_for(channel.handler.reading.wait(), 10)
        loop = asyncio.get_running_loop()
        closed_at = loop.time()
        await tab.close()
        await asyncio.wait_for(channel.handler.failed.wait(), server.options.liveness + 3)
        assert isinstance(channel.handler.error, jchannel_http.StateError)
        assert 'page went away' in str(channel.handler.error)
        assert channel.handler.failed_at - closed_at < server.options.liveness + 2
        assert server.streams.status()['uploads'] == 0
        assert server.streams.upload_budget.held == 0
