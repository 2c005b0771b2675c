"""The real client in headless Chromium behind every real intermediary of tests/support/intermediaries.py.

For each path, checks written once: the transport the page settles on, calls both ways, 300
concurrent calls each way, 16 MiB each way byte-exact in under 5 s, still working after twice the
path's idle timeout (shortened in its configuration), and what the doctor says (run before the
page connects, as a user would run it). With ``JCHANNEL_PATHS_RESULTS=file.json`` the results are
written there for ``python tests/support/intermediaries.py --write-table``.

One Chromium for the module; each path gets a fresh browser context (Squid as its proxy where the
path is a forward proxy) and its own kernel server, whose tunnel launcher is the intermediary.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pathlib
import random
import time
import zlib
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

import jchannel_http
from jchannel_http.tools.doctor import PROBLEM, Doctor, Report
from support import intermediaries
from support.chromium import CHROMIUM, CHROMIUM_ARGS, handler_of, new_page
from support.counting import CountingKernel
from support.stream_page import PAGE_SIDE as STREAM_PAGE_SIDE
from support.stream_page import KernelSide as StreamKernel

pytestmark = pytest.mark.asyncio(loop_scope='module')

TOKEN = 'intermediary-token-0123456789'
MiB = 1 << 20
SIZE = 16 * MiB
SECONDS = 5.0
RESULTS: dict[str, dict] = {}
FLOOR: dict[str, float] = {}
"""Seconds of each 16 MiB transfer on loopback without an intermediary, measured in this run."""

PAGE_SIDE = f"""(channel) => {{
  ({STREAM_PAGE_SIDE})(channel);
  // crypto.subtle exists only in secure contexts (not http://kernel.test through Squid)
  const table = Array.from({{length: 256}}, (_, n) => {{
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  }});
  window.crc32 = (bytes) => {{
    let crc = 0xffffffff;
    for (let i = 0; i < bytes.length; i++) crc = table[(crc ^ bytes[i]) & 255] ^ (crc >>> 8);
    return (crc ^ 0xffffffff) >>> 0;
  }};
  channel.handler.crc = async (stream) => {{
    const data = await stream.join();
    return [data.length, crc32(data)];
  }};
  window.seen = {{}};
  channel.handler.count = (id) => {{ window.seen[id] = (window.seen[id] || 0) + 1; return id; }};
  return 'ready';
}}"""
"""The stream test page side (digest, produce) with ``count(id)`` counting each run."""


class Kernel(StreamKernel, CountingKernel):
    def __init__(self) -> None:
        StreamKernel.__init__(self)
        CountingKernel.__init__(self)

    async def crc(self, stream) -> list[int]:
        size, crc = 0, 0
        async for chunk in stream:
            size += len(chunk)
            crc = zlib.crc32(chunk, crc)
        return [size, crc]


def seeded_crc(size: int, seed: int, chunk: int = 1 << 20) -> int:
    """The CRC-32 of ``seeded_stream(size, seed, chunk)``."""
    rnd, crc = random.Random(seed), 0
    for at in range(0, size, chunk):
        crc = zlib.crc32(rnd.randbytes(min(chunk, size - at)), crc)
    return crc


@dataclasses.dataclass
class Path:
    """One running path: the intermediary, the kernel server behind it, a connected page."""

    intermediary: intermediaries.Intermediary
    server: jchannel_http.Server
    context: BrowserContext
    page: Page
    channel: jchannel_http.Channel | None
    doctor: Report
    result: dict

    @property
    def name(self) -> str:
        return type(self.intermediary).__name__


@contextlib.contextmanager
def recorded(path: Path, check: str, **details: object) -> Iterator[dict]:
    """Record whether the block passed under ``check`` in the path's results."""
    entry: dict = {'passed': False, **details}
    path.result[check] = entry
    try:
        yield entry
    except BaseException as exc:
        entry['error'] = f'{type(exc).__name__}: {exc}'.splitlines()[0]
        raise
    entry['passed'] = True


@pytest_asyncio.fixture(scope='module', loop_scope='module')
async def chromium() -> AsyncIterator[Browser]:
    args = list(CHROMIUM_ARGS)
    for cls in intermediaries.PATHS:
        args += cls.chromium_args_before_launch()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield browser
        await browser.close()
    target = os.environ.get(intermediaries.RESULTS_VARIABLE)
    if target:
        write_results(target)


def write_results(target: str) -> None:
    """Merge this run's RESULTS into the JSON file ``target`` (over what an earlier run wrote)."""
    results = pathlib.Path(target)
    previous = json.loads(results.read_text()) if results.exists() else {}
    with open(target, 'w') as out:
        json.dump({**previous, **RESULTS}, out, indent=2)


def summary(report: Report) -> str:
    """The doctor's verdict in a table cell."""
    problems = [check.label for check in report.checks if check.status == PROBLEM]
    verdict = f'uses {report.transport}' if report.transport else 'no working transport'
    return verdict + (f'; problems: {", ".join(problems)}' if problems else '')


WORKING = [cls for cls in intermediaries.PATHS if cls.works]
BROKEN = [cls for cls in intermediaries.PATHS if not cls.works]
"""Paths that cannot work (a cache holding every answer) get only the test that they say so."""


@pytest_asyncio.fixture(
    scope='module', loop_scope='module', params=WORKING, ids=lambda cls: cls.__name__
)
async def path(request, chromium: Browser) -> AsyncIterator[Path]:
    async with running(request.param, chromium) as found:
        yield found


@pytest_asyncio.fixture(
    scope='module', loop_scope='module', params=BROKEN, ids=lambda cls: cls.__name__
)
async def broken_path(request, chromium: Browser) -> AsyncIterator[Path]:
    async with running(request.param, chromium) as found:
        yield found


@contextlib.asynccontextmanager
async def running(cls: type[intermediaries.Intermediary], chromium: Browser) -> AsyncIterator[Path]:
    """The intermediary ``cls`` started, a kernel server behind it, the doctor's report and a
    page connected through it (with a channel where the path can work)."""
    intermediary = cls()
    result = RESULTS.setdefault(cls.__name__, {})
    saved = os.environ.get('SSL_CERT_FILE')
    if cls is intermediaries.Caddy:
        os.environ['SSL_CERT_FILE'] = str(intermediaries.Caddy.prepare()[0])  # for the doctor
    server = jchannel_http.Server(
        token=TOKEN,
        tunnel=intermediary,
        heartbeat=1.5,
        poll_hold=1.5,
        first_event_deadline=1.5,
        upgrade_interval=600,
    )
    context = None
    try:
        await server.start()
        proxy = intermediary.forward_proxy
        context = await chromium.new_context(proxy={'server': proxy} if proxy else None)
        headers = await intermediary.login(context)
        doctor = await Doctor(
            server.page_url, headers=headers, deadline=2, hold=1.5, timeout=20, proxy=proxy
        ).run()
        result['doctor'] = summary(doctor)
        page = await new_page(context)
        await page.goto(server.page_url)
        channel = None
        if cls.works:
            channel = await server.open(PAGE_SIDE, timeout=30)
            channel.handler = Kernel()
        yield Path(intermediary, server, context, page, channel, doctor, result)
    finally:
        if context is not None:
            await context.close()
        await server.stop()
        if saved is None:
            os.environ.pop('SSL_CERT_FILE', None)
        else:
            os.environ['SSL_CERT_FILE'] = saved


async def settled_transport(path: Path, seconds: float = 20) -> str:
    """The page's transport once it stayed the same for two seconds."""
    last, since = None, time.monotonic()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = await path.page.evaluate('window.jchannelClient && window.jchannelClient.transport')
        if now != last:
            last, since = now, time.monotonic()
        elif now and time.monotonic() - since >= 2:
            return now
        await asyncio.sleep(0.2)
    raise AssertionError(f'the transport did not settle within {seconds:g} s (last {last})')


async def both_ways(path: Path, ids: range) -> None:
    """``count(id)`` for each id, each way at once; each ran exactly once on each side."""
    assert path.channel is not None
    kernel = asyncio.gather(*(path.channel.call('count', i, timeout=60) for i in ids))
    from_page = path.page.evaluate(
        """([start, stop]) => Promise.all(
        Array.from({length: stop - start}, (_, i) => channel.call('count', start + i)))""",
        [ids.start, ids.stop],
    )
    results, page_results = await asyncio.gather(kernel, from_page)
    assert results == list(ids) and page_results == list(ids)
    seen = await path.page.evaluate('window.seen')
    assert all(seen.get(str(i)) == 1 for i in ids)
    assert all(handler_of(path.channel, Kernel).seen[i] == 1 for i in ids)


async def test_transport_the_page_settles_on(path: Path) -> None:
    with recorded(path, 'transport_check') as entry:
        transport = await settled_transport(path)
        entry['transport'] = path.result['transport'] = transport
        assert transport == type(path.intermediary).transport
        assert path.server.status()['transport'] == transport
        if type(path.intermediary).http2:
            protocols = await path.page.evaluate(
                "[...new Set(performance.getEntriesByType('resource')"
                '.map((e) => e.nextHopProtocol))]'
            )
            entry['protocols'] = protocols
            assert protocols == ['h2']


async def test_calls_both_ways(path: Path) -> None:
    with recorded(path, 'calls'):
        assert path.channel is not None  # a working path opened one
        assert await path.channel.call('count', -1, timeout=30) == -1
        assert await path.page.evaluate("channel.call('count', -2)") == -2
        await both_ways(path, range(20))


async def test_300_concurrent_calls_each_way(path: Path) -> None:
    with recorded(path, 'concurrent'):
        await both_ways(path, range(1000, 1300))


def limit(path: Path, check: str, seconds: float) -> float:
    """The most seconds a 16 MiB transfer may take: SECONDS, or twice the floor measured on
    loopback in this run when the shared machine is slower than that right now."""
    if isinstance(path.intermediary, intermediaries.Loopback):
        FLOOR[check] = seconds
        return 3 * SECONDS  # the floor itself: only a sanity bound
    floor = FLOOR.get(check, 0.0)
    path.result[check]['floor'] = floor
    return max(SECONDS, 2 * floor)


async def test_16_mib_to_the_page_byte_exact(path: Path) -> None:
    with recorded(path, 'download') as entry:
        started = time.monotonic()
        answer = await path.page.evaluate(
            """async (size) => {
            const stream = await channel.call('produce', size, 21, 1 << 20);
            const data = await stream.join();
            return [data.length, crc32(data)];
        }""",
            SIZE,
        )
        entry['seconds'] = time.monotonic() - started
        assert answer == [SIZE, seeded_crc(SIZE, 21, 1 << 20)]
        assert entry['seconds'] < limit(path, 'download', entry['seconds'])


async def test_16_mib_to_the_kernel_byte_exact(path: Path) -> None:
    with recorded(path, 'upload') as entry:
        started = time.monotonic()
        got, expected = await path.page.evaluate(
            """async (size) => {
            const bytes = t.makeBytes(size, 23);
            const source = new jchannel.StreamSource(t.chunksOf(bytes, 1 << 20), { total: size });
            const answer = await channel.callWithStream('crc', source);
            return [answer, [size, crc32(bytes)]];
        }""",
            SIZE,
        )
        entry['seconds'] = time.monotonic() - started
        assert got == expected
        assert entry['seconds'] < limit(path, 'upload', entry['seconds'])


async def test_still_working_after_twice_the_idle_timeout(path: Path) -> None:
    idle = type(path.intermediary).idle
    with recorded(path, 'idle', waited=f'{2 * idle:g} s'):
        before = await path.page.evaluate('window.jchannelClient.transport')
        await asyncio.sleep(2 * idle)
        await both_ways(path, range(2000, 2050))
        assert await path.page.evaluate('window.jchannelClient.transport') == before
        assert path.page.errors == []  # type: ignore[attr-defined]  # new_page() gives a Page this list


async def test_the_doctor_agrees_with_the_page(path: Path) -> None:
    with recorded(path, 'doctor_check'):
        assert path.doctor.transport == type(path.intermediary).transport, path.doctor.render()


async def test_a_path_that_cannot_work_says_so(broken_path: Path) -> None:
    path = broken_path
    with recorded(path, 'says_so') as entry:
        path.result['transport'] = 'none'
        assert path.doctor.transport is None, path.doctor.render()
        assert 'cache' in path.doctor.check('statuses').advice, path.doctor.render()
        assert 'no working transport' in path.doctor.render()
        # the page says so once a stored answer (Age above 0) reaches it; which answers the
        # cache holds depends on what was asked before (here the doctor's requests): recorded
        for _ in range(20):
            entry['page'] = await path.page.text_content('#jchannel-state')
            if 'a cache on the way' in entry['page']:
                break
            await asyncio.sleep(0.5)


# -- connections per host -------------------------------------------------------------------


def tab_side(index: int) -> str:
    """A page side for server ``index`` of a tab that hosts several: ``count(id)`` answers."""
    return f"""(channel) => {{
  (window.channels ??= [])[{index}] = channel;
  channel.handler = {{ count(id) {{ return id; }} }};
  return 'ready';
}}"""


class Busy(CountingKernel):
    """A slow consumer of uploads and a slow producer of downloads, to hold connections."""

    async def slow_sink(self, stream) -> int:
        size = 0
        async for chunk in stream:
            size += len(chunk)
            await asyncio.sleep(0.05)
        return size

    def slow_source(self, size: int):
        async def generate():
            for _ in range(size // 65536):
                await asyncio.sleep(0.02)
                yield bytes(65536)

        return generate()


STREAMS = """(size) => {
  window.streamsDone = 0;
  for (const channel of window.channels) {
    async function* chunks() { for (let i = 0; i < size; i += 1 << 18) yield new Uint8Array(1 << 18); }
    channel.callWithStream('slow_sink', new jchannel.StreamSource(chunks(), { total: size }))
      .then(() => { window.streamsDone += 1; });
    channel.call('slow_source', size).then((stream) => stream.join())
      .then(() => { window.streamsDone += 1; });
  }
  return window.channels.length;
}"""


@pytest.mark.parametrize(
    'cls',
    [intermediaries.JupyterServerProxy, intermediaries.Caddy],
    ids=['http1.1-one-host', 'http2-one-host'],
)
async def test_three_servers_in_one_tab_keep_calling_while_streams_run(chromium, cls) -> None:
    ports = [intermediaries.free_port() for _ in range(3)]
    intermediary = cls(routes=ports) if cls is intermediaries.Caddy else cls()
    await intermediary.start(ports[0])
    servers = [
        jchannel_http.Server(
            token=TOKEN,
            port=port,
            url=intermediary.url_for(port),
            heartbeat=1.5,
            stream_buffer=1 << 20,
        )
        for port in ports
    ]
    context = None
    entry: dict = {'passed': False}
    RESULTS.setdefault('connections', {})[cls.name] = entry
    try:
        for server in servers:
            await server.start()
        context = await chromium.new_context()
        await intermediary.login(context)
        page = await context.new_page()
        await page.goto(servers[0].page_url)
        channels = [await servers[0].open(tab_side(0), timeout=30)]
        for index, server in enumerate(servers[1:], 1):
            await page.evaluate(
                '([url, token]) => jchannel.start(url, {token}).then(() => 1)', [server.url, TOKEN]
            )
            channels.append(await server.open(tab_side(index), timeout=30))
        for channel in channels:
            channel.handler = Busy()
        assert await page.evaluate(STREAMS, 8 * MiB) == 3
        await asyncio.sleep(1)  # the uploads and downloads hold their connections now
        started = time.monotonic()
        for index, channel in enumerate(channels):
            ids = list(range(index * 100, index * 100 + 20))
            kernel = asyncio.gather(*(channel.call('count', i, timeout=30) for i in ids))
            from_page = page.evaluate(
                """([index, ids]) => Promise.all(
                ids.map((id) => window.channels[index].call('count', id)))""",
                [index, ids],
            )
            assert list(await asyncio.gather(kernel, from_page)) == [
                ids,
                ids,
            ]  # gather() gives a list
        seconds = time.monotonic() - started
        running = 6 - await page.evaluate('window.streamsDone')
        entry.update(seconds=seconds, running=running)
        assert running > 0, 'the streams ended before the calls: nothing was tested'
        assert seconds < 10
        await page.wait_for_function('window.streamsDone === 6', timeout=60_000)
        protocols = await page.evaluate(
            "[...new Set(performance.getEntriesByType('resource').map((e) => e.nextHopProtocol))]"
        )
        assert set(protocols) - {''} == ({'h2'} if cls.http2 else {'http/1.1'}), protocols
        entry['passed'] = True
    finally:
        RESULTS['connections'][cls.name] = (
            f'{"passed" if entry["passed"] else "FAILED"}: 120 calls took '
            f'{entry.get("seconds", float("nan")):.1f} s with {entry.get("running", "?")} of 6 '
            'transfers still running'
        )
        if context is not None:
            await context.close()
        for server in servers:
            await server.stop()
        await intermediary.stop()
