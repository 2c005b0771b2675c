"""Calls while the kernel's own loop is blocked by pure-Python work, through headless Chromium.

Run it as ``python benchmarks/bench_busy.py``; it prints the figures and writes
``benchmarks/results_busy.md``. It is not a test.

What it measures, every figure ``--runs`` times (2 by default) in one process, after a warm-up,
for each interpreter switch interval of ``--switch-intervals`` (``sys.setswitchinterval``: how
long a thread waiting for the GIL lets the thread that holds it run before asking it to let go):

- background round trip, loop busy: the page calls a ``@jchannel_http.background`` kernel method
  (it returns its argument) ``--calls`` times one after the other, each timed in the page with
  ``performance.now()``, while the thread of the kernel's loop (the loop that started the
  server, as a notebook kernel's) runs ``while not done: x += 1`` until the page reports;
- the same with that loop idle (it awaits the page) while another process runs the busy loop:
  the same load on the two cores without the wait for the GIL, which tells one cost from the
  other; the same with nothing else running; and an ordinary method on the idle loop;
- how fast the busy loop counts while the transport serves the page, as a share of how fast it
  counts alone (as long again, right after each chunk of calls, the page idle): what serving
  the page takes from the computation;
- ``call_sync`` from a blocked loop: synchronous code on the kernel's loop calls
  ``channel.call_sync('add', i, 1)`` for ``--seconds`` seconds (calls/s, and each call's p50 /
  p99), next to sequential ``await channel.call('add', i, 1)`` on the idle loop;
- the floors of the same run, from bench_calls.py's bare aiohttp app and bare page: an event
  pushed on a plain event stream answered by a ``fetch`` POST, one after the other (the least
  one kernel -> page call needs), and a bare ``fetch`` round trip from the page;
- the GIL wait itself, without the browser: how late a thread that sleeps 2 ms again and again
  wakes up while the main thread counts, next to its lateness with the main thread idle.

The page's round trips of a run are taken in turns of 100 calls (floor, idle, busy, other
process busy, floor, ...), so that a noisy moment of the machine weighs on all of them alike.

A sequence's calls/s is its count over its elapsed time; for the page's sequences, over the sum
of the timed calls. The part of ``results_busy.md`` from ``## What the figures say`` on is kept
as it is when the file is written again: it reads the figures, and holds bench_calls.py's
figures with and without the transport thread (``bench_calls.py --no-write
[--no-transport-thread]``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from playwright.async_api import Page, async_playwright

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchmarks.bench_calls import CHROMIUM, CHROMIUM_ARGS, MEASURE_JS, Floor, machine  # noqa: E402

import jchannel_http  # noqa: E402

BACKGROUND_P50 = 15.0  # ms: a background round trip's p50 while the kernel's loop is busy
BACKGROUND_P99 = 60.0  # ms: its p99
CALL_SYNC_RATE = 1_000  # calls/s: call_sync, one after the other, from a blocked loop
SPIN_LIMIT = 120.0  # seconds: the longest the busy loop waits for the page's report
CHUNK = 100  # page round trips timed in one go before the next figure's turn
CHUNK_WARMUP = 10  # untimed round trips before each chunk
GIL_SECONDS = 1.0  # seconds of each GIL wait figure
NAP = 0.002  # seconds the GIL wait figure's thread sleeps each time
ALONE_SECONDS = 3.0  # most seconds of counting alone after a busy chunk (its reference)
RESULTS = HERE / 'results_busy.md'
KEPT = '## What the figures say'  # the hand-kept part of RESULTS starts with this heading


# -- the two sides ---------------------------------------------------------------------------

PAGE_SIDE = """(channel) => {
  channel.handler = { add(a, b) { return a + b; } };
  window.benchChannel = channel;
  return 'ready';
}"""

# The page's busy-loop measurement: it runs on its own (the kernel's loop is blocked, so no
# Playwright command could start it then) and reports its times to a background method.
BUSY_JS = """
window.benchBusy = (warmup, count) => {
  const call = (i) => window.benchChannel.call('background_echo', i);
  benchSequential(call, warmup, count).then(
    (times) => window.benchChannel.call('finished', times),
    (error) => window.benchChannel.call('failed', String(error)));
  return 'started';
};
"""


class KernelSide:
    """The kernel handler: an ordinary echo, a background echo, and the page's report."""

    def __init__(self) -> None:
        self.done = False
        self.times: list[float] = []
        self.error: str | None = None

    def reset(self) -> None:
        self.done = False
        self.times = []
        self.error = None

    def echo(self, value: object) -> object:
        return value

    @jchannel_http.background
    def background_echo(self, value: object) -> object:
        return value

    @jchannel_http.background
    def finished(self, times: list[float]) -> None:
        self.times = times
        self.done = True

    @jchannel_http.background
    def failed(self, message: str) -> None:
        self.error = message
        self.done = True


# -- figures ---------------------------------------------------------------------------------


@dataclass
class Sequence:
    """Calls made one after the other: each one's time (ms) and the time they took (s)."""

    times: list[float]
    seconds: float

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def p50(self) -> float:
        return self.percentile(0.50)

    @property
    def p99(self) -> float:
        return self.percentile(0.99)

    @property
    def max(self) -> float:
        return max(self.times)

    @property
    def rate(self) -> float:
        return len(self.times) / self.seconds

    def latency(self) -> str:
        return f'{self.p50:.2f} / {self.p99:.2f} / {self.max:.1f} ms'

    def throughput(self) -> str:
        return f'{self.rate:,.0f} calls/s ({self.p50:.2f} / {self.p99:.2f} ms)'


def page_times(times: list[float]) -> Sequence:
    return Sequence(times, sum(times) / 1000)


@dataclass
class Share:
    """The busy loop's speed while the page is served, as a share of its speed alone."""

    served: float  # counts per second while serving
    alone: float  # counts per second alone

    @property
    def fraction(self) -> float:
        return self.served / self.alone

    def __str__(self) -> str:
        return f'{self.fraction:.0%} ({self.served / 1e6:.1f} of {self.alone / 1e6:.1f} M/s)'


def spin(kernel: KernelSide, limit: float) -> int:
    """Count with pure-Python work on this thread (holding the GIL between forced switches)
    until the page reports; the count. TimeoutError after ``limit`` seconds."""
    end = time.monotonic() + limit
    x = 0
    while not kernel.done:
        x += 1
        if (x & 0xFFFFF) == 0 and time.monotonic() > end:
            raise TimeoutError(f'the page did not report within {limit:g} s')
    return x


def count_alone(seconds: float) -> int:
    """Count as ``spin`` does, with nothing else to do, for ``seconds`` seconds; the count."""

    class Never:
        done = False

    flag = Never()
    end = time.perf_counter() + seconds
    x = 0
    while not flag.done:
        x += 1
        if (x & 0xFFFF) == 0 and time.perf_counter() > end:
            break
    return x


class Bench:
    """One library server with its page, the floor app with its page, and the measurements."""

    def __init__(
        self,
        channel: jchannel_http.Channel,
        kernel: KernelSide,
        page: Page,
        floor: Floor,
        floor_page: Page,
        args: argparse.Namespace,
    ) -> None:
        self.channel = channel
        self.kernel = kernel
        self.page = page
        self.floor = floor
        self.floor_page = floor_page
        self.args = args
        self.counted = 0  # the busy loop's counts over this run's busy chunks
        self.busy_seconds = 0.0  # and the time they took
        self.counted_alone = 0  # the same loop's counts, alone, after each busy chunk
        self.alone_seconds = 0.0

    async def page_chunk(self, page: Page, call: str, warmup: int, count: int) -> list[float]:
        return await page.evaluate(f'([w, n]) => benchSequential({call}, w, n)', [warmup, count])

    async def busy_chunk(self, warmup: int, count: int) -> list[float]:
        """Background round trips timed in the page while this thread computes."""
        self.kernel.reset()
        await self.page.evaluate('([w, n]) => benchBusy(w, n)', [warmup, count])
        start = time.perf_counter()
        self.counted += spin(self.kernel, SPIN_LIMIT)  # blocks the loop: a cell that computes
        took = time.perf_counter() - start
        self.busy_seconds += took
        start = time.perf_counter()  # the same work for about as long, the page idle
        self.counted_alone += count_alone(min(took, ALONE_SECONDS))
        self.alone_seconds += time.perf_counter() - start
        if self.kernel.error is not None:
            raise RuntimeError(f'the page failed: {self.kernel.error}')
        return self.kernel.times

    async def other_process_chunk(self, warmup: int, count: int) -> list[float]:
        """Background round trips with this loop idle while another process computes: the
        same load on the CPUs as ``busy_chunk``, without the wait for the GIL."""
        rival = subprocess.Popen([sys.executable, '-c', RIVAL, str(SPIN_LIMIT)])
        try:
            return await self.page_chunk(self.page, BG_CALL, warmup, count)
        finally:
            rival.kill()
            rival.wait()

    async def page_figures(self) -> dict[str, object]:
        """The page's round trips, in turns of CHUNK calls (floor, idle, busy, floor, ...) so
        that a noisy moment of the machine weighs on all of them alike."""
        a = self.args
        chunks: dict[str, Callable[[int, int], Awaitable[list[float]]]] = {
            'floor_fetch': functools.partial(self.page_chunk, self.floor_page, 'floorFetch'),
            'idle_ordinary': functools.partial(self.page_chunk, self.page, ORDINARY_CALL),
            'idle_background': functools.partial(self.page_chunk, self.page, BG_CALL),
            'busy_background': self.busy_chunk,
            'rival_background': self.other_process_chunk,
        }
        self.counted, self.busy_seconds, self.counted_alone, self.alone_seconds = 0, 0.0, 0, 0.0
        times: dict[str, list[float]] = {name: [] for name in chunks}
        for chunk in chunks.values():
            await chunk(a.warmup, 0)
        for done in range(0, a.calls, CHUNK):
            for name, chunk in chunks.items():
                times[name] += await chunk(CHUNK_WARMUP, min(CHUNK, a.calls - done))
        figures: dict[str, object] = {name: page_times(times[name]) for name in chunks}
        figures['busy_share'] = Share(
            self.counted / self.busy_seconds, self.counted_alone / self.alone_seconds
        )
        return figures

    async def blocked_call_sync(self) -> Sequence:
        """``call_sync`` one after the other from this thread, its loop blocked meanwhile."""
        for i in range(self.args.warmup):
            self.channel.call_sync('add', i, 1)
        return timed_loop(lambda i: self.channel.call_sync('add', i, 1), self.args.seconds)

    async def awaited_calls(self) -> Sequence:
        for i in range(self.args.warmup):
            await self.channel.call('add', i, 1)
        return await timed_async_loop(lambda i: self.channel.call('add', i, 1), self.args.seconds)

    async def floor_push(self, i: int) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.floor.waiting[i] = future
        assert self.floor.stream is not None
        await self.floor.stream.write(b'data: {"c":%d}\n\n' % i)
        return (await future) + 1

    async def floor_pushes(self) -> Sequence:
        for i in range(self.args.warmup):
            await self.floor_push(i)
        return await timed_async_loop(self.floor_push, self.args.seconds)

    async def run(self) -> dict[str, list]:
        """Every figure, ``args.runs`` times, for each switch interval."""
        a = self.args
        figures: dict[str, list] = {}
        old_interval = sys.getswitchinterval()
        try:
            for interval in a.switch_intervals:
                sys.setswitchinterval(interval / 1000)
                for run in range(1, a.runs + 1):
                    record(figures, interval, 'floor_push', await self.floor_pushes(), run)
                    for name, value in (await self.page_figures()).items():
                        record(figures, interval, name, value, run)
                    record(figures, interval, 'call_sync', await self.blocked_call_sync(), run)
                    record(figures, interval, 'awaited', await self.awaited_calls(), run)
                    record(figures, interval, 'gil_busy', gil_wait(GIL_SECONDS, busy=True), run)
                    record(figures, interval, 'gil_idle', gil_wait(GIL_SECONDS, busy=False), run)
        finally:
            sys.setswitchinterval(old_interval)
        return figures


def gil_wait(seconds: float, busy: bool) -> Sequence:
    """How late a thread that sleeps NAP seconds again and again wakes up, for ``seconds``
    seconds, while this thread counts (``busy``) or waits for it: with the GIL held here, the
    time a waking thread waits for it (the transport's thread waits so on every wake-up)."""
    late: list[float] = []
    over = threading.Event()

    def sleeper() -> None:
        while not over.is_set():
            before = time.perf_counter()
            time.sleep(NAP)
            late.append((time.perf_counter() - before - NAP) * 1000)

    thread = threading.Thread(target=sleeper, name='bench sleeper', daemon=True)
    start = time.perf_counter()
    thread.start()
    if busy:
        x = 0
        end = start + seconds
        while not over.is_set():
            x += 1
            if (x & 0xFFFF) == 0 and time.perf_counter() > end:
                over.set()
    else:
        time.sleep(seconds)
        over.set()
    thread.join(5)
    return Sequence(late, time.perf_counter() - start)


RIVAL = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
x = 0
while True:
    x += 1
    if (x & 0xFFFFF) == 0 and time.monotonic() > end:
        break
"""
"""What the other process runs: the busy loop, bounded in time (it is killed before)."""

ORDINARY_CALL = "(i) => window.benchChannel.call('echo', i)"
BG_CALL = "(i) => window.benchChannel.call('background_echo', i)"


def timed_loop(call: Callable[[int], object], seconds: float) -> Sequence:
    """Call ``call(i)`` (which returns ``i + 1``) one after the other for ``seconds`` seconds."""
    times = []
    start = time.perf_counter()
    end = start + seconds
    i = 0
    while (before := time.perf_counter()) < end:
        value = call(i)
        times.append((time.perf_counter() - before) * 1000)
        if value != i + 1:
            raise AssertionError(f'call {i} answered {value!r}')
        i += 1
    return Sequence(times, time.perf_counter() - start)


async def timed_async_loop(call: Callable[[int], Awaitable[object]], seconds: float) -> Sequence:
    """``timed_loop`` for awaited calls."""
    times = []
    start = time.perf_counter()
    end = start + seconds
    i = 0
    while (before := time.perf_counter()) < end:
        value = await call(i)
        times.append((time.perf_counter() - before) * 1000)
        if value != i + 1:
            raise AssertionError(f'call {i} answered {value!r}')
        i += 1
    return Sequence(times, time.perf_counter() - start)


FIGURES = {
    'busy_background': 'background round trip, kernel loop busy: p50 / p99 / max',
    'busy_share': 'busy loop speed while serving, of its speed alone',
    'rival_background': 'the same, loop idle, another process busy: p50 / p99 / max',
    'idle_background': 'background round trip, kernel loop idle: p50 / p99 / max',
    'idle_ordinary': 'ordinary round trip, kernel loop idle: p50 / p99 / max',
    'call_sync': 'call_sync from a blocked loop (p50 / p99 per call)',
    'awaited': 'await channel.call, idle loop (p50 / p99 per call)',
    'floor_push': 'floor: event push answered by a POST (p50 / p99)',
    'floor_fetch': 'floor: page fetch round trip, p50 / p99 / max',
    'gil_busy': 'GIL wait of a waking thread, loop busy: p50 / p99 / max',
    'gil_idle': 'the same, loop idle (timer lateness): p50 / p99 / max',
}
LATENCIES = {
    'busy_background',
    'rival_background',
    'idle_background',
    'idle_ordinary',
    'floor_fetch',
    'gil_busy',
    'gil_idle',
}


def record(figures: dict[str, list], interval: float, name: str, value: object, run: int) -> None:
    figures.setdefault(f'{name}@{interval:g}', []).append(value)
    print(f'  {interval:g} ms  run {run}  {FIGURES[name]:<58} {cell(name, value)}', flush=True)


def cell(name: str, value: object) -> str:
    if isinstance(value, Share):
        return str(value)
    assert isinstance(value, Sequence)
    return value.latency() if name in LATENCIES else value.throughput()


def verdict(name: str, runs: list) -> tuple[str, str]:
    """The target of figure ``name`` and whether its runs met it: every run, only some, none."""
    if name == 'busy_background':
        target = f'p50 <= {BACKGROUND_P50:g} ms, p99 <= {BACKGROUND_P99:g} ms'
        met = [run.p50 <= BACKGROUND_P50 and run.p99 <= BACKGROUND_P99 for run in runs]
    elif name == 'call_sync':
        target = f'>= {CALL_SYNC_RATE:,} calls/s'
        met = [run.rate >= CALL_SYNC_RATE for run in runs]
    else:
        return '-', '-'
    if all(met):
        return target, 'yes'
    return target, 'in some runs' if any(met) else '**no**'


def table(figures: dict[str, list], interval: float) -> str:
    runs = len(figures[f'busy_background@{interval:g}'])
    heads = ' | '.join(f'run {i}' for i in range(1, runs + 1))
    lines = [f'| figure | {heads} | target | met |', '|---' * (runs + 3) + '|']
    for name, text in FIGURES.items():
        values = figures[f'{name}@{interval:g}']
        target, met = verdict(name, values)
        lines.append(
            f'| {text} | ' + ' | '.join(cell(name, v) for v in values) + f' | {target} | {met} |'
        )
    return '\n'.join(lines)


# -- reporting -------------------------------------------------------------------------------


def kept_section(path: Path) -> str:
    """The hand-kept part of ``path`` (from the KEPT heading on), or nothing."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ''
    start = text.find('\n' + KEPT)
    return '' if start < 0 else text[start + 1 :]


def markdown(figures: dict[str, list], info: dict[str, str], args: argparse.Namespace) -> str:
    tables = '\n\n'.join(
        f'### Switch interval {interval:g} ms'
        + (' (the interpreter default)' if interval == 5 else '')
        + f'\n\n{table(figures, interval)}'
        for interval in args.switch_intervals
    )
    return f"""# Calls while the kernel's loop is busy

Written by `python benchmarks/bench_busy.py`; rerun it to refresh this file (the section
"{KEPT[3:]}" and what follows it are kept as they are).

- date: {info['date']}
- machine: nproc {info['nproc']} ({info['cpu']}), loopback; 1-minute load average
  {info['load']} the measurements (other work shares this machine)
- browser: Chromium {info['chromium']}, headless, driven by Playwright {info['playwright']}
- Python {info['python']}, aiohttp {info['aiohttp']}
- jchannel_http {info['library']}: `jchannel_http.Server()` with its defaults (the transport
  on a thread of its own), the page at `server.page_url`, transport `sse-get`
- round trips from the page: {args.calls:,} timed calls per run after {args.warmup} untimed ones
- `call_sync`, awaited calls and the event-push floor: {args.seconds:g} s of calls per run
  after {args.warmup} untimed ones
- every figure {args.runs} times per switch interval (`sys.setswitchinterval`), in one process

Latencies are p50 / p99 / max in ms, timed in the page with `performance.now()`; rates are calls
one after the other per second (each call's p50 / p99 in brackets). "Busy" means the thread of
the kernel's loop runs `while not done: x += 1` (pure Python, no call that lets the GIL go) from
just after the page starts calling until a background method receives the page's times;
"another process busy" runs the same loop in a second Python process instead, the kernel's loop
idle. The page's round trips are taken in turns of {CHUNK} calls of each figure, so that a
noisy moment of the machine weighs on all of them alike. The GIL wait is how late a thread
that sleeps {NAP * 1000:g} ms again and again wakes up while the main thread counts (what the
transport's thread waits each time it wakes for a request), next to the same with the main
thread idle (the timer's own lateness). The busy loop's speed while serving is its count over
its busy chunks against the same loop's count run alone right after each chunk, for as long.

{tables}
"""


# -- main ------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> int:
    floor = await Floor().start()
    try:
        async with (
            jchannel_http.Server() as server,
            async_playwright() as playwright,
        ):
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                floor_page = await browser.new_page()
                await floor_page.goto(floor.url)
                await floor_page.evaluate(MEASURE_JS)
                await asyncio.wait_for(floor.connected.wait(), 10)
                page = await browser.new_page()
                await page.goto(server.page_url)
                channel = await server.open(PAGE_SIDE, timeout=10)
                kernel = KernelSide()
                channel.handler = kernel
                await page.evaluate(MEASURE_JS + BUSY_JS)
                in_use = server.status()['transport']
                print(f'measuring over {in_use} ({args.runs} runs per switch interval)', flush=True)
                load_before = os.getloadavg()[0]
                bench = Bench(channel, kernel, page, floor, floor_page, args)
                figures = await bench.run()
                info = machine(browser.version, args.runs)
                info['load'] = f'{load_before:.1f} before, {os.getloadavg()[0]:.1f} after'
                for interval in args.switch_intervals:
                    print(f'\nswitch interval {interval:g} ms\n{table(figures, interval)}')
                if not args.no_write:
                    RESULTS.write_text(markdown(figures, info, args) + '\n' + kept_section(RESULTS))
                    print(f'\nwrote {RESULTS}')
            finally:
                await browser.close()
    finally:
        await floor.stop()
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--calls', type=int, default=500, help='timed round trips per page figure (default 500)'
    )
    parser.add_argument(
        '--seconds',
        type=float,
        default=3.0,
        help='seconds of calls per call_sync / awaited / floor rate figure (default 3)',
    )
    parser.add_argument(
        '--warmup', type=int, default=50, help='untimed calls before each figure (default 50)'
    )
    parser.add_argument('--runs', type=int, default=2, help='runs of every figure (default 2)')
    parser.add_argument(
        '--switch-intervals',
        type=lambda text: [float(part) for part in text.split(',')],
        default=[5.0, 1.0, 0.5],
        help='comma-separated switch intervals in ms, each measured in turn (default 5,1,0.5)',
    )
    parser.add_argument(
        '--no-write', action='store_true', help='print only; leave results_busy.md as it is'
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.calls < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error('--runs, --calls and --seconds must be positive, --warmup not negative')
    if not args.switch_intervals or min(args.switch_intervals) <= 0:
        parser.error('--switch-intervals must be positive numbers of ms')
    return args


if __name__ == '__main__':
    sys.exit(asyncio.run(main(parse_args())))
