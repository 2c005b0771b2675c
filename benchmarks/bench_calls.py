"""Speed of calls both ways through headless Chromium, next to bare HTTP floors of the same run.

Run it as ``python benchmarks/bench_calls.py``; it prints a table and writes
``benchmarks/results.md`` and ``benchmarks/results.png``. It is not a test.

What it measures, every figure ``--runs`` times (3 by default) in one process, after a warm-up:

- the library (``jchannel_http.Server`` with its defaults, or with ``transport_thread=False``
  given ``--no-transport-thread``; the page opened at ``page_url``):
  kernel -> page and page -> kernel sequential call latency (p50, p99), and throughput with
  many calls in flight at once (``asyncio.gather`` of ``channel.call`` on the kernel,
  ``Promise.all`` of ``channel.call`` in the page, timed with ``performance.now()``);
- the floors, a bare aiohttp app on another port with a bare page: a ``fetch`` POST answered
  at once (the floor of page -> kernel latency); an event pushed on a plain text/event-stream
  read with ``fetch``, answered by a ``fetch`` POST (the floor of kernel -> page latency); and
  for throughput the same push/POST pair with at most one POST in flight, coalescing
  everything that arrived meanwhile into the next one (each way);
- the same library figures over the fallback transports (a server forced to
  ``transport='sse-post'``, another to ``transport='poll'``), next to the event stream over a
  ``fetch`` GET: long-poll's p50 latency is held to 1.5x of it.

Every handler is trivial (it returns its argument), so the figures are the cost of the
transport and of the library's bookkeeping. The pages are driven by Playwright, which is fine
for calls (their bodies are small); see ``shared/notes/benchmarking.md`` for uploads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import jchannel_http

HERE = Path(__file__).resolve().parent
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
]
LATENCY_TARGET = 1.25  # at most this times the floor, at p50
THROUGHPUT_TARGET = 10_000  # calls/s, each way
CALL_TIMEOUT = (
    300  # seconds: a throughput batch's bound on outbox room (timeout) and on each call (deadline)
)
CHUNK = 100  # sequential calls timed in one go before the next figure's turn
CHUNK_WARMUP = 10  # untimed calls before each chunk


# -- the library's side ---------------------------------------------------------------------

PAGE_SIDE = """(channel) => {
  channel.handler = { echo(value) { return value; } };
  window.benchChannel = channel;
  return 'ready';
}"""


class KernelSide:
    """The kernel handler the page calls."""

    def echo(self, value):
        return value


# Page-side measurements, shared by the library page and the floor page: each takes
# ``call(i) -> Promise`` from the page's globals, so the loops are the same code for both.
MEASURE_JS = """
window.benchSequential = async (call, warmup, count) => {
  for (let i = 0; i < warmup; i += 1) await call(i);
  const times = new Array(count);
  for (let i = 0; i < count; i += 1) {
    const start = performance.now();
    const value = await call(i);
    times[i] = performance.now() - start;
    if (value !== i) throw new Error(`call ${i} answered ${value}`);
  }
  return times;
};
window.benchConcurrent = async (call, count) => {
  const start = performance.now();
  const values = await Promise.all(Array.from({ length: count }, (_, i) => call(i)));
  const elapsed = performance.now() - start;
  values.forEach((value, i) => {
    if (value !== i) throw new Error(`call ${i} answered ${value}`);
  });
  return elapsed;
};
"""

LIBRARY_CALL = "(i) => window.benchChannel.call('echo', i)"


# -- the floors: a bare aiohttp app and a bare page -------------------------------------------

FLOOR_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>floor</title></head>
<body><p id="state">loading</p>
<script>
// One POST in flight at a time; whatever is queued meanwhile goes into the next one.
class Coalescer {
  constructor(url) { this.url = url; this.queue = []; this.busy = false; }
  push(text) {
    this.queue.push(text);
    if (!this.busy) this.flush();
  }
  async flush() {
    this.busy = true;
    while (this.queue.length > 0) {
      const body = '[' + this.queue.join(',') + ']';
      this.queue = [];
      const response = await fetch(this.url, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
      await response.text();
    }
    this.busy = false;
  }
}
const answers = new Coalescer('/answer');   // kernel -> page: answers to pushed events
const calls = new Coalescer('/calls');      // page -> kernel: calls, answered on the stream
const waiting = new Map();

function onEvent(data) {
  const message = JSON.parse(data);
  if ('c' in message) {
    answers.push(JSON.stringify({ c: message.c }));
  } else {
    const resolve = waiting.get(message.r);
    waiting.delete(message.r);
    resolve(message.r);
  }
}

async function readStream() {
  const response = await fetch('/events', { headers: { Accept: 'text/event-stream' },
                                            cache: 'no-store' });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  document.getElementById('state').textContent = 'connected';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    const blocks = buffer.split('\\n\\n');
    buffer = blocks.pop();
    for (const block of blocks) {
      if (block.startsWith('data: ')) onEvent(block.slice(6));
    }
  }
}

// page -> kernel over the floor: a call queued for the next POST, answered by an event.
window.floorCall = (i) => new Promise((resolve) => {
  waiting.set(i, resolve);
  calls.push('{"i":' + i + '}');
});
// A bare fetch round trip: POST a small JSON body, read the small JSON answer.
window.floorFetch = async (i) => {
  const response = await fetch('/rtt', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"i":' + i + '}' });
  return (await response.json()).i;
};
readStream();
</script></body></html>
"""


class Floor:
    """A bare aiohttp app: a plain event stream, and POST endpoints that do the least."""

    def __init__(self) -> None:
        self.stream: web.StreamResponse | None = None
        self.connected = asyncio.Event()
        self.closing = asyncio.Event()
        self.waiting: dict[int, asyncio.Future] = {}
        self.runner: web.AppRunner | None = None
        self.url = ''

    async def start(self) -> Floor:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get('/', self.page)
        app.router.add_get('/events', self.events)
        app.router.add_post('/rtt', self.rtt)
        app.router.add_post('/answer', self.answer)
        app.router.add_post('/calls', self.calls)
        self.runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, '127.0.0.1', 0)
        await site.start()
        self.url = f'http://127.0.0.1:{self.runner.addresses[0][1]}/'
        return self

    async def stop(self) -> None:
        self.closing.set()
        if self.runner is not None:
            await self.runner.cleanup()

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=FLOOR_PAGE, content_type='text/html')

    async def events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache, no-transform'}
        )
        await response.prepare(request)
        await response.write(b': open\n\n')
        self.stream = response
        self.connected.set()
        await self.closing.wait()
        return response

    async def rtt(self, request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type='application/json')

    async def answer(self, request: web.Request) -> web.Response:
        for item in orjson.loads(await request.read()):
            self.waiting.pop(item['c']).set_result(item['c'])
        return web.Response(body=b'{}', content_type='application/json')

    async def calls(self, request: web.Request) -> web.Response:
        items = orjson.loads(await request.read())
        assert self.stream is not None
        await self.stream.write(b''.join(b'data: {"r":%d}\n\n' % item['i'] for item in items))
        return web.Response(body=b'{}', content_type='application/json')

    async def push(self, count: int) -> list:
        """Push events 0 to ``count - 1`` in one write; return their answers."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(count)]
        self.waiting = dict(enumerate(futures))
        assert self.stream is not None
        await self.stream.write(b''.join(b'data: {"c":%d}\n\n' % i for i in range(count)))
        return await asyncio.gather(*futures)


# -- measurements ---------------------------------------------------------------------------


@dataclass
class Latency:
    """Sequential call times, in milliseconds."""

    times: list[float]

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def p50(self) -> float:
        return self.percentile(0.50)

    @property
    def p99(self) -> float:
        return self.percentile(0.99)

    def __str__(self) -> str:
        return f'{self.p50:.2f} / {self.p99:.2f} ms'


@dataclass
class Throughput:
    """``calls`` calls in flight at once, all answered within ``seconds``."""

    calls: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def __str__(self) -> str:
        return f'{self.rate:,.0f} calls/s'


async def kernel_sequential(
    call: Callable[[int], Awaitable[object]], warmup: int, count: int
) -> Latency:
    """Time ``count`` awaited calls one after the other, after ``warmup`` untimed ones."""
    for i in range(warmup):
        await call(i)
    times = []
    for i in range(count):
        start = time.perf_counter()
        value = await call(i)
        times.append((time.perf_counter() - start) * 1000)
        assert value == i, f'call {i} answered {value!r}'
    return Latency(times)


async def page_sequential(page: Page, call: str, warmup: int, count: int) -> Latency:
    times = await page.evaluate(f'([w, n]) => benchSequential({call}, w, n)', [warmup, count])
    return Latency(times)


async def page_concurrent(page: Page, call: str, count: int) -> Throughput:
    elapsed_ms = await page.evaluate(f'(n) => benchConcurrent({call}, n)', count)
    return Throughput(count, elapsed_ms / 1000)


TRANSPORTS = ('sse-get', 'sse-post', 'poll')
"""The library's transports, each measured on a server forced to it (the first is the one a
server with its defaults ends on, so it is also the one compared with the floors)."""


@dataclass
class Lane:
    """One library server forced to one transport, the page connected to it, its channel."""

    transport: str
    server: jchannel_http.Server
    page: Page | None = None
    channel: jchannel_http.Channel | None = None

    async def open(self, browser: Browser) -> None:
        self.page = await browser.new_page()
        await self.page.goto(self.server.page_url)
        self.channel = await self.server.open(PAGE_SIDE, timeout=10)
        self.channel.handler = KernelSide()
        await self.page.evaluate(MEASURE_JS)
        in_use = self.server.status()['transport']
        assert in_use == self.transport, f'the page uses {in_use}, not {self.transport}'

    async def kernel_call(self, i: int) -> object:
        assert self.channel is not None
        return await self.channel.call('echo', i)

    async def kernel_concurrent(self, count: int) -> Throughput:
        assert self.channel is not None
        start = time.perf_counter()
        values = await asyncio.gather(
            *(
                self.channel.call('echo', i, timeout=CALL_TIMEOUT, deadline=CALL_TIMEOUT)
                for i in range(count)
            )
        )
        elapsed = time.perf_counter() - start
        assert values == list(range(count)), 'the kernel -> page calls answered wrongly'
        return Throughput(count, elapsed)


def key(figure: str, transport: str) -> str:
    """The key of a library figure over ``transport`` (the first transport's keys are bare)."""
    return figure if transport == TRANSPORTS[0] else f'{figure}@{transport}'


class Bench:
    """The floor page and one page per transport in one headless Chromium, and the figures
    of each run."""

    def __init__(
        self, browser: Browser, lanes: list[Lane], floor: Floor, args: argparse.Namespace
    ) -> None:
        self.browser = browser
        self.lanes = lanes
        self.floor = floor
        self.args = args
        self.floor_page: Page | None = None

    async def open_pages(self) -> None:
        self.floor_page = await self.browser.new_page()
        await self.floor_page.goto(self.floor.url)
        await self.floor_page.evaluate(MEASURE_JS)
        await asyncio.wait_for(self.floor.connected.wait(), 10)
        for lane in self.lanes:
            await lane.open(self.browser)

    async def floor_push(self, i: int) -> int:
        future = asyncio.get_running_loop().create_future()
        self.floor.waiting[i] = future
        assert self.floor.stream is not None
        await self.floor.stream.write(b'data: {"c":%d}\n\n' % i)
        return await future

    async def floor_concurrent(self, count: int) -> Throughput:
        start = time.perf_counter()
        values = await self.floor.push(count)
        elapsed = time.perf_counter() - start
        assert values == list(range(count)), 'the floor answered wrongly'
        return Throughput(count, elapsed)

    async def run(self) -> dict[str, list]:
        """Every figure, ``args.runs`` times, floors and library interleaved.

        The sequential figures of one run are taken in chunks of ``CHUNK`` calls taken in
        turn (floor, library over each transport, floor, ...), so that a noisy moment of the
        machine weighs on all of them alike; each chunk starts with a few untimed calls.
        """
        a = self.args
        floor = self.floor_page
        assert floor is not None
        latency_steps: dict[str, Callable[[int, int], Awaitable[Latency]]] = {
            'floor_push_post': lambda w, n: kernel_sequential(self.floor_push, w, n),
            'floor_fetch': lambda w, n: page_sequential(floor, 'floorFetch', w, n),
        }
        rate_steps: dict[str, Callable[[int], Awaitable[Throughput]]] = {
            'floor_k2p_rate': self.floor_concurrent,
            'floor_p2k_rate': lambda n: page_concurrent(floor, 'floorCall', n),
        }
        for lane in self.lanes:
            t, page = lane.transport, lane.page
            assert page is not None
            latency_steps[key('k2p_latency', t)] = functools.partial(
                kernel_sequential, lane.kernel_call
            )
            latency_steps[key('p2k_latency', t)] = functools.partial(
                page_sequential, page, LIBRARY_CALL
            )
            rate_steps[key('k2p_rate', t)] = lane.kernel_concurrent
            rate_steps[key('p2k_rate', t)] = functools.partial(page_concurrent, page, LIBRARY_CALL)
        figures: dict[str, list] = {name: [] for name in FIGURES}
        for run in range(1, a.runs + 1):
            times: dict[str, list[float]] = {name: [] for name in latency_steps}
            for step in latency_steps.values():
                await step(a.warmup, 0)
            for done in range(0, a.sequential, CHUNK):
                for name, step in latency_steps.items():
                    times[name] += (await step(CHUNK_WARMUP, min(CHUNK, a.sequential - done))).times
            for name in latency_steps:
                figures[name].append(Latency(times[name]))
                print(f'  run {run}  {FIGURES[name]:<58} {figures[name][-1]}', flush=True)
            for name, measure in rate_steps.items():
                await measure(a.concurrent // 10)
                figures[name].append(await measure(a.concurrent))
                print(f'  run {run}  {FIGURES[name]:<58} {figures[name][-1]}', flush=True)
        return figures


LIBRARY_FIGURES = {
    'k2p_latency': 'kernel -> page sequential latency, p50 / p99',
    'p2k_latency': 'page -> kernel sequential latency, p50 / p99',
    'k2p_rate': 'kernel -> page throughput',
    'p2k_rate': 'page -> kernel throughput',
}
FIGURES = {
    'floor_push_post': 'floor: event push answered by a POST, p50 / p99',
    'floor_fetch': 'floor: fetch round trip, p50 / p99',
    'floor_k2p_rate': 'floor: pushes answered by coalesced POSTs',
    'floor_p2k_rate': 'floor: coalesced POSTs answered by pushes',
    **{
        key(name, t): text if t == TRANSPORTS[0] else f'{text} ({t})'
        for t in TRANSPORTS
        for name, text in LIBRARY_FIGURES.items()
    },
}

# (library figure, its floor, direction, how the floor is described)
COMPARISONS = [
    ('k2p_latency', 'floor_push_post', 'kernel -> page', 'event push + POST'),
    ('p2k_latency', 'floor_fetch', 'page -> kernel', 'fetch round trip'),
    ('k2p_rate', 'floor_k2p_rate', 'kernel -> page', 'pushes + coalesced POSTs'),
    ('p2k_rate', 'floor_p2k_rate', 'page -> kernel', 'coalesced POSTs + pushes'),
]
TRANSPORT_TARGET = 1.5  # a fallback transport's p50 latency, at most this times sse-get's


@dataclass
class Row:
    """One line of a results table: a library figure next to its reference (a floor, or the
    same figure over the first transport), and the target it is held to."""

    figure: str
    direction: str
    floor_name: str
    runs: list
    floor_runs: list
    latency_target: float = LATENCY_TARGET
    rate_target: float | None = THROUGHPUT_TARGET

    @property
    def is_latency(self) -> bool:
        return isinstance(self.runs[0], Latency)

    def best(self, runs: list, attribute: str) -> float:
        """The better run's value of ``attribute`` (each percentile on its own)."""
        values = [getattr(run, attribute) for run in runs]
        return min(values) if self.is_latency else max(values)

    def ratio(self, attribute: str) -> float:
        return self.best(self.runs, attribute) / self.best(self.floor_runs, attribute)

    @property
    def met(self) -> bool | None:
        if self.is_latency:
            return self.ratio('p50') <= self.latency_target
        if self.rate_target is None:
            return None
        return self.best(self.runs, 'rate') >= self.rate_target

    def cells(self) -> list[str]:
        if self.is_latency:
            ratio = f'{self.ratio("p50"):.2f}x / {self.ratio("p99"):.2f}x'
            target = f'p50 within {self.latency_target}x'
        else:
            ratio = f'{self.ratio("rate"):.2f}x'
            target = '-' if self.rate_target is None else f'at least {self.rate_target:,} calls/s'
        met = {True: 'yes', False: '**no**', None: '-'}[self.met]
        return [
            self.figure,
            '; '.join(map(str, self.runs)),
            f'{self.floor_name}: ' + '; '.join(map(str, self.floor_runs)),
            ratio,
            target,
            met,
        ]


def compare(figures: dict[str, list]) -> list[Row]:
    """The library over its first transport against the floors."""
    return [
        Row(FIGURES[name], direction, floor_name, figures[name], figures[floor_key])
        for name, floor_key, direction, floor_name in COMPARISONS
    ]


def compare_transports(figures: dict[str, list]) -> list[Row]:
    """Each fallback transport against the first one: latency held to TRANSPORT_TARGET,
    throughput reported as it is."""
    rows = []
    for t in TRANSPORTS[1:]:
        for name, _, direction, _ in COMPARISONS:
            rows.append(
                Row(
                    FIGURES[key(name, t)],
                    f'{direction} ({t})',
                    TRANSPORTS[0],
                    figures[key(name, t)],
                    figures[name],
                    latency_target=TRANSPORT_TARGET,
                    rate_target=None,
                )
            )
    return rows


# -- reporting ------------------------------------------------------------------------------


def library_version() -> str:
    """The package version, and the commit of the checkout it was imported from."""
    root = Path(jchannel_http.__file__).resolve().parent.parent
    version = jchannel_http.__version__
    try:
        commit = subprocess.run(
            ['git', 'rev-parse', '--short', 'HEAD'],
            cwd=root,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ['git', 'status', '--porcelain', '--', 'jchannel_http', 'client_js'],
            cwd=root,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return version
    return f'{version}, commit {commit}' + (' with uncommitted changes' if changes else '')


def machine(browser_version: str, runs: int) -> dict[str, str]:
    model = platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                model = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    return {
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'nproc': str(os.cpu_count()),
        'cpu': model,
        'chromium': browser_version,
        'playwright': metadata.version('playwright'),
        'python': platform.python_version(),
        'aiohttp': metadata.version('aiohttp'),
        'runs': str(runs),
        'library': library_version(),
    }


def table(rows: list[Row], reference: str = 'floor') -> str:
    runs = '; '.join(f'run {i}' for i in range(1, len(rows[0].runs) + 1))
    lines = [
        f'| figure | jchannel_http ({runs}) | {reference} ({runs}) | ratio to {reference} '
        '| target | met |',
        '|---|---|---|---|---|---|',
    ]
    lines += ['| ' + ' | '.join(row.cells()) + ' |' for row in rows]
    return '\n'.join(lines)


def markdown(
    rows: list[Row], transport_rows: list[Row], info: dict[str, str], args: argparse.Namespace
) -> str:
    return f"""# Call benchmark

Written by `python benchmarks/bench_calls.py`; rerun it to refresh this file and `results.png`.

- date: {info['date']}
- machine: nproc {info['nproc']} ({info['cpu']}), loopback; 1-minute load average
  {info['load']} the measurements (other work shares this machine)
- browser: Chromium {info['chromium']}, headless, driven by Playwright {info['playwright']}
- Python {info['python']}, aiohttp {info['aiohttp']}
- jchannel_http {info['library']}: `jchannel_http.Server({server_options(args)})`, the page at
  `server.page_url`, transport `{TRANSPORTS[0]}`; for the second table, the same with
  `transport='sse-post'` and `transport='poll'` (long-poll, `poll_hold` 25 s)
- sequential latency: {args.sequential:,} timed calls per run, after {args.warmup} warm-up
  calls; throughput: {args.concurrent:,} calls in flight at once per run, after a warm-up
  batch of {args.concurrent // 10:,}

{table(rows)}

Latencies are p50 / p99 in ms. Every figure was taken {args.runs} times in one process; a ratio
divides the library's better run by the floor's better run (p50 and p99 each on its own). The
latency target is judged at p50: on this shared 2-core machine p99 swings widely from run to
run, for the floors as much as for the library (compare the runs).

How each figure is timed (every handler returns its argument):

- kernel -> page latency: in Python, around `await channel.call('echo', i)`;
- page -> kernel latency: in the page, `performance.now()` around `await channel.call('echo', i)`;
- kernel -> page throughput: in Python, around `asyncio.gather` of `channel.call`;
- page -> kernel throughput: in the page, `performance.now()` around `Promise.all` of
  `channel.call`.

The floors run in the same process and the same browser, against a bare aiohttp app and a bare
page: an event pushed on a plain `text/event-stream` read with `fetch` and answered by a `fetch`
POST (the floor of kernel -> page latency); a `fetch` POST of a small JSON body answered at once
(the floor of page -> kernel latency); and for throughput the same pairs with at most one POST
in flight, each coalescing everything that arrived meanwhile (the kernel pushes all its events
in one write and awaits one future per event; the page keeps one promise per call). The
sequential figures of a run are taken in turns of {CHUNK} calls, so that a noisy moment weighs
on floors and library alike.

## Transports

The same figures over the fallback transports, each next to the event stream over a `fetch`
GET of the same run (the transport a page ends on when nothing in between buffers). The
target is p50 latency within {TRANSPORT_TARGET}x of it; throughput is shown as it is.

{table(transport_rows, TRANSPORTS[0])}

![calls: library against floors](results.png)
"""


def server_options(args: argparse.Namespace) -> str:
    """The options every server was started with, as Python source."""
    return 'transport_thread=False' if args.no_transport_thread else ''


def nice_step(top: float) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving four to eight ticks."""
    magnitude = 10 ** math.floor(math.log10(top / 4))
    return next(m * magnitude for m in (1, 2, 5, 10) if top / (m * magnitude) <= 8)


def chart_html(rows: list[Row], transport_rows: list[Row], info: dict[str, str]) -> str:
    """An SVG chart of horizontal bars: p50 latency (linear) and throughput (log) each way,
    then p50 latency over each transport."""
    blue, grey, red, ink = '#2f6fb0', '#b4b4b4', '#c0392b', '#222'
    left, plot, width = 230, 560, 1000
    bar, gap, group_gap = 22, 6, 18
    svg: list[str] = []
    y = 16

    def panel(
        title: str,
        bars: list[tuple[str, str, float, str]],
        position,
        ticks,
        target: tuple[float, str] | None = None,
        group: int = 2,
    ) -> None:
        """Bars of (label, colour, value, text), in groups of ``group`` (by default pairs:
        the library's, then its floor's); the first of a group is labelled in bold."""
        nonlocal y
        svg.append(f'<text x="{left}" y="{y + 14}" class="title">{title}</text>')
        top = y = y + 42
        rows_y = []
        for i in range(len(bars)):
            if i > 0 and i % group == 0:
                y += group_gap
            rows_y.append(y)
            y += bar + gap
        bottom = y - gap
        for value, label in ticks:
            x = left + position(value) * plot
            svg.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{bottom + 4}" class="grid"/>'
            )
            svg.append(f'<text x="{x:.1f}" y="{bottom + 18}" class="tick">{label}</text>')
        for i, (bar_y, (label, color, value, text)) in enumerate(zip(rows_y, bars, strict=True)):
            kind = 'floor' if i % group else 'group'
            svg.append(f'<text x="{left - 12}" y="{bar_y + 16}" class="{kind}">{label}</text>')
            length = max(1.0, position(value) * plot)
            svg.append(
                f'<rect x="{left}" y="{bar_y}" width="{length:.1f}" height="{bar}" fill="{color}"/>'
            )
            svg.append(
                f'<text x="{left + length + 6:.1f}" y="{bar_y + 16}" class="value">{text}</text>'
            )
        if target is not None:
            x = left + position(target[0]) * plot
            svg.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 8}" y2="{bottom + 4}" '
                f'stroke="{red}" stroke-width="2" stroke-dasharray="5 4"/>'
            )
            svg.append(f'<text x="{x + 5:.1f}" y="{top - 10}" class="target">{target[1]}</text>')
        y = bottom + 58

    latency = [row for row in rows if row.is_latency]
    top = max(max(row.best(row.runs, 'p50'), row.best(row.floor_runs, 'p50')) for row in latency)
    step = nice_step(top * 1.15)
    limit = step * math.ceil(top * 1.15 / step)
    bars = []
    for row in latency:
        lib, flo = (row.best(row.runs, 'p50'), row.best(row.floor_runs, 'p50'))
        bars.append(
            (
                row.direction,
                blue,
                lib,
                f'{lib:.2f} ms  (p99 {row.best(row.runs, "p99"):.1f}; '
                f'{row.ratio("p50"):.2f}x the floor)',
            )
        )
        bars.append(
            (
                f'floor: {row.floor_name}',
                grey,
                flo,
                f'{flo:.2f} ms  (p99 {row.best(row.floor_runs, "p99"):.1f})',
            )
        )
    panel(
        'Sequential call latency, p50 (lower is better)',
        bars,
        lambda v: v / limit,
        [(step * i, f'{step * i:g} ms') for i in range(int(limit / step) + 1)],
        None,
    )

    rates = [row for row in rows if not row.is_latency]
    low, high = 3, 6  # 1,000 to 1,000,000 calls/s
    position = lambda v: (math.log10(max(v, 10**low)) - low) / (high - low)  # noqa: E731
    bars = []
    for row in rates:
        lib, flo = row.best(row.runs, 'rate'), row.best(row.floor_runs, 'rate')
        bars.append((row.direction, blue, lib, f'{lib:,.0f} calls/s  ({lib / flo:.2f}x the floor)'))
        bars.append((f'floor: {row.floor_name}', grey, flo, f'{flo:,.0f} calls/s'))
    panel(
        'Throughput with many calls in flight (higher is better; log scale)',
        bars,
        position,
        [(10**e, f'{10**e:,}') for e in range(low, high + 1)],
        (THROUGHPUT_TARGET, f'target {THROUGHPUT_TARGET:,}/s'),
    )

    latency = [row for row in transport_rows if row.is_latency]
    top = max(row.best(runs, 'p50') for row in latency for runs in (row.runs, row.floor_runs))
    step = nice_step(top * 1.15)
    limit = step * math.ceil(top * 1.15 / step)
    bars = []
    for direction in ('kernel -> page', 'page -> kernel'):
        group = [row for row in latency if row.direction.startswith(direction)]
        base = group[0].best(group[0].floor_runs, 'p50')
        bars.append((f'{direction} ({TRANSPORTS[0]})', blue, base, f'{base:.2f} ms'))
        for row in group:
            value = row.best(row.runs, 'p50')
            bars.append(
                (
                    row.direction,
                    blue,
                    value,
                    f'{value:.2f} ms  ({row.ratio("p50"):.2f}x {TRANSPORTS[0]})',
                )
            )
    panel(
        f'Sequential call latency by transport, p50 (target: within {TRANSPORT_TARGET}x '
        f'{TRANSPORTS[0]})',
        bars,
        lambda v: v / limit,
        [(step * i, f'{step * i:g} ms') for i in range(int(limit / step) + 1)],
        None,
        group=len(TRANSPORTS),
    )

    svg.append(
        f'<rect x="{left}" y="{y - 22}" width="14" height="14" fill="{blue}"/>'
        f'<text x="{left + 20}" y="{y - 10}" class="legend">jchannel_http</text>'
        f'<rect x="{left + 150}" y="{y - 22}" width="14" height="14" fill="{grey}"/>'
        f'<text x="{left + 170}" y="{y - 10}" class="legend">'
        'bare HTTP floor, same run</text>'
    )
    svg.append(
        f'<text x="{left}" y="{y + 12}" class="caption">{info["date"]} · nproc '
        f'{info["nproc"]} · Chromium {info["chromium"]} headless · loopback · better of '
        f'{info["runs"]} runs</text>'
    )
    height = y + 24
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; background: #fff; font-family: "DejaVu Sans", sans-serif; }}
.title {{ font-size: 16px; font-weight: bold; fill: {ink}; }}
.group {{ font-size: 14px; font-weight: bold; text-anchor: end; fill: {ink}; }}
.floor {{ font-size: 12px; text-anchor: end; fill: #666; }}
.value {{ font-size: 12px; fill: {ink}; }}
.tick {{ font-size: 11px; text-anchor: middle; fill: #666; }}
.grid {{ stroke: #e2e2e2; }}
.target {{ font-size: 12px; fill: {red}; }}
.legend {{ font-size: 13px; fill: {ink}; }}
.caption {{ font-size: 11px; fill: #777; }}
</style></head><body>
<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">
{chr(10).join(svg)}
</svg></body></html>"""


async def render_chart(browser: Browser, html: str, path: Path) -> None:
    page = await browser.new_page(device_scale_factor=2)
    try:
        await page.set_content(html)
        await page.locator('#chart').screenshot(path=str(path))
    finally:
        await page.close()


# -- main -----------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> int:
    floor = await Floor().start()
    try:
        async with contextlib.AsyncExitStack() as stack:
            lanes = []
            for t in TRANSPORTS:
                options: dict[str, Any] = {} if t == TRANSPORTS[0] else {'transport': t}
                if args.no_transport_thread:
                    options['transport_thread'] = False
                server = await stack.enter_async_context(jchannel_http.Server(**options))
                lanes.append(Lane(t, server))
            playwright = await stack.enter_async_context(async_playwright())
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            stack.push_async_callback(browser.close)
            bench = Bench(browser, lanes, floor, args)
            await bench.open_pages()
            print(f'measuring ({args.runs} runs; each figure after a warm-up)', flush=True)
            load_before = os.getloadavg()[0]
            figures = await bench.run()
            rows, transport_rows = compare(figures), compare_transports(figures)
            info = machine(browser.version, args.runs)
            info['load'] = f'{load_before:.1f} before, {os.getloadavg()[0]:.1f} after'
            print()
            print(table(rows))
            print()
            print(table(transport_rows, TRANSPORTS[0]))
            if not args.no_write:
                (HERE / 'results.md').write_text(markdown(rows, transport_rows, info, args))
                await render_chart(
                    browser, chart_html(rows, transport_rows, info), HERE / 'results.png'
                )
                print(f'\nwrote {HERE / "results.md"} and {HERE / "results.png"}')
            for lane in lanes:
                if lane.page is not None:
                    await lane.page.close()
    finally:
        await floor.stop()
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--sequential',
        type=int,
        default=2000,
        help='timed sequential calls per latency figure and run (default 2000)',
    )
    parser.add_argument(
        '--warmup',
        type=int,
        default=200,
        help='untimed calls before each latency figure (default 200)',
    )
    parser.add_argument(
        '--concurrent',
        type=int,
        default=10_000,
        help='calls in flight at once per throughput figure (default 10000)',
    )
    parser.add_argument('--runs', type=int, default=3, help='runs of every figure (default 3)')
    parser.add_argument(
        '--no-transport-thread',
        action='store_true',
        help='start every server with transport_thread=False (the transport on the calling loop)',
    )
    parser.add_argument(
        '--no-write',
        action='store_true',
        help='print only; leave results.md and results.png as they are',
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.sequential < 1 or args.concurrent < 10:
        parser.error('--runs and --sequential must be positive, --concurrent at least 10')
    return args


if __name__ == '__main__':
    sys.exit(asyncio.run(main(parse_args())))
