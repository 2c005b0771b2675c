"""Speed of byte streams both ways through headless Chromium, next to bare fetch of the same bytes.

Run it as ``python benchmarks/bench_streams.py [--size MiB] [--runs N]``; it prints a table and
writes ``benchmarks/results_streams.md``. It is not a test.

The page is a plain ``chromium --headless=new`` process (Playwright would copy every upload body
to its driver: see ``shared/notes/benchmarking.md``) that measures itself with
``performance.now()`` and reports back to the kernel over the channel. In one run, after a
warm-up, each figure is taken ``--runs`` times with the same bytes:

- kernel -> page: ``channel.call_with_stream`` into a page method that reads the stream to its
  end, next to a bare ``fetch`` download of the same bytes from a bare aiohttp app;
- page -> kernel: ``channel.callWithStream`` into a kernel method that reads the stream to its
  end, next to one bare ``fetch`` POST of the same bytes to the bare app.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import jchannel_http
from jchannel_http.types import CallResult

HERE = Path(__file__).resolve().parent
MiB = 1 << 20
CHROMIUM = [
    '/usr/bin/chromium',
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-extensions',
]
TARGETS = {'kernel -> page': 150.0, 'page -> kernel': 100.0}
SHARE_OF_BARE = 0.6

PAGE_SIDE = r"""(channel) => {
  const makeBytes = (size, seed) => {
    const words = new Uint32Array(Math.ceil(size / 4));
    let x = (seed >>> 0) || 1;
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; words[i] = x;
    }
    return new Uint8Array(words.buffer, 0, size);
  };
  async function* chunksOf(bytes, size) {
    for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
  }
  const cache = new Map();
  const bytesOf = (size) => {
    if (!cache.has(size)) cache.set(size, makeBytes(size, 12345));
    return cache.get(size);
  };
  channel.handler = {
    async readStream(stream) {
      const start = performance.now();
      let size = 0;
      for await (const chunk of stream) size += chunk.length;
      return [size, performance.now() - start];
    },
    async bareDownload(url) {
      const start = performance.now();
      const response = await fetch(url, { cache: 'no-store' });
      const reader = response.body.getReader();
      let size = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.length;
      }
      return [size, performance.now() - start];
    },
    async sendStream(size) {
      const bytes = bytesOf(size);
      const start = performance.now();
      const received = await channel.callWithStream('read_stream', chunksOf(bytes, 1 << 20));
      return [received, performance.now() - start];
    },
    async bareUpload(url, size) {
      const bytes = bytesOf(size);
      const start = performance.now();
      const response = await fetch(url, { method: 'POST', body: bytes });
      const received = Number(await response.text());
      return [received, performance.now() - start];
    },
  };
  return 'ready';
}"""


class KernelSide:
    async def read_stream(self, stream: jchannel_http.MetaGenerator) -> int:
        size = 0
        async for chunk in stream:
            size += len(chunk)
        return size


def bare_app(data: bytes) -> web.Application:
    """A bare aiohttp app: GET /download streams ``data``; POST /upload reads and counts."""
    cors = {'Access-Control-Allow-Origin': '*'}

    async def download(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={**cors, 'Content-Type': 'application/octet-stream'})
        await response.prepare(request)
        view = memoryview(data)
        for start in range(0, len(data), MiB):
            await response.write(view[start : start + MiB])
        await response.write_eof()
        return response

    async def upload(request: web.Request) -> web.Response:
        size = 0
        while chunk := await request.content.readany():
            size += len(chunk)
        return web.Response(text=str(size), headers=cors)

    app = web.Application(client_max_size=1 << 40)
    app.router.add_get('/download', download)
    app.router.add_post('/upload', upload)
    return app


def measured(answer: CallResult) -> tuple[int, float]:
    """A page method's ``[bytes, milliseconds]``."""
    assert isinstance(answer, list) and len(answer) == 2, answer
    size, milliseconds = answer
    assert isinstance(size, int) and isinstance(milliseconds, (int, float)), answer
    return size, milliseconds


def mb_per_s(size: int, milliseconds: float) -> float:
    return size / 1e6 / (milliseconds / 1000)


async def measure(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    size = args.size * MiB
    data = random.Random(7).randbytes(size)
    slices = [data[start : start + MiB] for start in range(0, size, MiB)]
    runner = web.AppRunner(bare_app(data), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, '127.0.0.1', 0)
    await site.start()
    bare = f'http://127.0.0.1:{runner.addresses[0][1]}'
    profile = tempfile.TemporaryDirectory(prefix='jchannel-bench-')
    browser = None
    figures: dict[str, dict[str, list[float]]] = {
        'kernel -> page': {'library': [], 'bare': []},
        'page -> kernel': {'library': [], 'bare': []},
    }

    async def chunks(parts: list[bytes]):
        for part in parts:
            yield part

    try:
        async with jchannel_http.Server() as server:
            browser = subprocess.Popen(
                [*CHROMIUM, f'--user-data-dir={profile.name}', server.page_url],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            channel = await server.open(PAGE_SIDE, timeout=60)
            channel.handler = KernelSide()
            warm = slices[:8]
            await channel.call_with_stream('readStream', chunks(warm), deadline=60)
            await channel.call('bareDownload', f'{bare}/download', deadline=60)
            await channel.call('sendStream', 8 * MiB, deadline=60)
            await channel.call('bareUpload', f'{bare}/upload', 8 * MiB, deadline=60)
            for _ in range(args.runs):
                got, ms = measured(
                    await channel.call_with_stream('readStream', chunks(slices), deadline=60)
                )
                figures['kernel -> page']['library'].append(mb_per_s(got, ms))
                got, ms = measured(
                    await channel.call('bareDownload', f'{bare}/download', deadline=60)
                )
                figures['kernel -> page']['bare'].append(mb_per_s(got, ms))
                got, ms = measured(await channel.call('sendStream', size, deadline=120))
                figures['page -> kernel']['library'].append(mb_per_s(got, ms))
                got, ms = measured(
                    await channel.call('bareUpload', f'{bare}/upload', size, deadline=120)
                )
                figures['page -> kernel']['bare'].append(mb_per_s(got, ms))
    finally:
        if browser is not None:
            os.killpg(browser.pid, signal.SIGTERM)
            browser.wait(timeout=10)
        profile.cleanup()
        await runner.cleanup()
    return figures


def report(figures: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> str:
    lines = [
        f'# Byte stream speed ({datetime.date.today()}, {args.size} MiB, {args.runs} runs, '
        f'{os.cpu_count()} cores, headless Chromium on loopback)',
        '',
        '| direction | library MB/s (median; runs) | bare fetch MB/s (median; runs) '
        '| share of bare | targets |',
        '|---|---|---|---|---|',
    ]
    for direction, pair in figures.items():
        library = statistics.median(pair['library'])
        bare = statistics.median(pair['bare'])
        runs = ', '.join(f'{value:.0f}' for value in pair['library'])
        bare_runs = ', '.join(f'{value:.0f}' for value in pair['bare'])
        share = library / bare
        met = library >= TARGETS[direction] and share >= SHARE_OF_BARE
        lines.append(
            f'| {direction} | {library:.0f} ({runs}) | {bare:.0f} ({bare_runs}) | '
            f'{share:.0%} | >= {TARGETS[direction]:.0f} MB/s and >= '
            f'{SHARE_OF_BARE:.0%}: {"met" if met else "NOT met"} |'
        )
    return '\n'.join(lines) + '\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=64, help='MiB per transfer (default 64)')
    parser.add_argument('--runs', type=int, default=3, help='runs of each figure (default 3)')
    args = parser.parse_args()
    text = report(asyncio.run(measure(args)), args)
    print(text)
    (HERE / 'results_streams.md').write_text(text)


if __name__ == '__main__':
    main()
