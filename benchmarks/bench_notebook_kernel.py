"""The kernel's half of ``bench_notebook.py``: imported by the benchmark notebook's cells.

It runs in a Python 3.12 kernel where both ``jchannel_http`` and ``jupyter-jchannel`` 0.3.9
(imported as ``jchannel``) are installed. It starts one server per lane (each library, and
``jchannel_http`` with ``transport_thread=False``) whose page side runs in the notebook's tab,
and a bare aiohttp app (the floors: WebSocket echo, ``fetch`` round trip, an event pushed and
answered by a POST, 64 MiB download and upload). Every measurement is driven from a cell: the
kernel times its own calls, and asks the page to time the page's (``performance.now()``).
Each function returns plain numbers that the cell prints as one JSON line.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import pstats
import random
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from IPython.core.display import HTML
from IPython.display import display

import jchannel_http

MiB = 1 << 20
CALL_TIMEOUT = 600  # seconds: bound on the wait for a page (both libraries' ``timeout``)
CORS = {'Access-Control-Allow-Origin': '*'}

# The page side of every lane: the same handler for both libraries (both call it with the
# channel; both give page methods a stream as their first argument and take ``callWithStream``).
PAGE_SIDE = r"""(channel) => {
  const lane = LANE;
  const makeBytes = (size, seed) => {
    const words = new Uint32Array(Math.ceil(size / 4));
    let x = (seed >>> 0) || 1;
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; words[i] = x;
    }
    return new Uint8Array(words.buffer, 0, size);
  };
  const cache = new Map();
  const bytesOf = (size) => {
    if (!cache.has(size)) cache.set(size, makeBytes(size, 12345));
    return cache.get(size);
  };
  async function* chunksOf(bytes, size) {
    for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
  }
  const check = (values) => values.forEach((value, i) => {
    if (value !== i) throw new Error(`call ${i} answered ${value}`);
  });
  channel.handler = {
    echo(value) { return value; },
    async runSequential(warmup, count) {
      for (let i = 0; i < warmup; i += 1) await channel.call('echo', i);
      const times = new Array(count);
      for (let i = 0; i < count; i += 1) {
        const start = performance.now();
        const value = await channel.call('echo', i);
        times[i] = performance.now() - start;
        if (value !== i) throw new Error(`call ${i} answered ${value}`);
      }
      return times;
    },
    async runConcurrent(count) {
      const before = await channel.call('cpu');
      const start = performance.now();
      const values = await Promise.all(
        Array.from({ length: count }, (_, i) => channel.call('echo', i)));
      const elapsed = performance.now() - start;
      const after = await channel.call('cpu');
      check(values);
      return [elapsed, after - before];
    },
    async readStream(stream) {
      const start = performance.now();
      let size = 0;
      for await (const chunk of stream) size += chunk.length;
      return [size, performance.now() - start];
    },
    async sendStream(size) {
      const bytes = bytesOf(size);
      const start = performance.now();
      const received = await channel.callWithStream('read_stream', chunksOf(bytes, 1 << 20));
      return [received, performance.now() - start];
    },
    // -- the floors, against the bare app at ``base`` --------------------------------------
    async bareDownload(base) {
      const start = performance.now();
      const response = await fetch(`${base}/download`, { cache: 'no-store' });
      const reader = response.body.getReader();
      let size = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.length;
      }
      return [size, performance.now() - start];
    },
    async bareUpload(base, size) {
      const bytes = bytesOf(size);
      const start = performance.now();
      const response = await fetch(`${base}/upload`, { method: 'POST', body: bytes });
      return [Number(await response.text()), performance.now() - start];
    },
    async fetchRoundTrip(base, warmup, count, method = 'POST') {
      const once = async (i) => {
        const response = method === 'GET'
          ? await fetch(`${base}/rtt?i=${i}`, { cache: 'no-store' })
          : await fetch(`${base}/rtt`, { method: 'POST', body: String(i) });
        return Number(await response.text());
      };
      for (let i = 0; i < warmup; i += 1) await once(i);
      const times = new Array(count);
      for (let i = 0; i < count; i += 1) {
        const start = performance.now();
        const value = await once(i);
        times[i] = performance.now() - start;
        if (value !== i) throw new Error(`fetch ${i} answered ${value}`);
      }
      return times;
    },
    async bareUploadChunks(base, size, chunk) {
      // Through a body cap: the same bytes in sequential POSTs of ``chunk`` bytes.
      const bytes = bytesOf(size);
      const start = performance.now();
      let received = 0;
      for (let at = 0; at < size; at += chunk) {
        const response = await fetch(`${base}/upload`, {
          method: 'POST', body: bytes.subarray(at, Math.min(size, at + chunk)) });
        received += Number(await response.text());
      }
      return [received, performance.now() - start];
    },
    async wsOpen(base) {
      const socket = new WebSocket(`ws${base.slice(4)}/ws`);
      await new Promise((resolve, reject) => {
        socket.onopen = resolve;
        socket.onerror = () => reject(new Error('the bare WebSocket did not open'));
      });
      return socket;
    },
    async wsRoundTrip(base, warmup, count) {
      const socket = await this.wsOpen(base);
      let answer = null;
      socket.onmessage = (event) => answer(Number(event.data));
      const once = (i) => new Promise((resolve) => { answer = resolve; socket.send(String(i)); });
      for (let i = 0; i < warmup; i += 1) await once(i);
      const times = new Array(count);
      for (let i = 0; i < count; i += 1) {
        const start = performance.now();
        const value = await once(i);
        times[i] = performance.now() - start;
        if (value !== i) throw new Error(`message ${i} answered ${value}`);
      }
      socket.close();
      return times;
    },
    async wsRate(base, count) {
      const socket = await this.wsOpen(base);
      let seen = 0;
      const done = new Promise((resolve) => {
        socket.onmessage = (event) => {
          if (Number(event.data) !== seen) throw new Error(`message ${seen} out of order`);
          seen += 1;
          if (seen === count) resolve();
        };
      });
      const start = performance.now();
      for (let i = 0; i < count; i += 1) socket.send(String(i));
      await done;
      const elapsed = performance.now() - start;
      socket.close();
      return elapsed;
    },
    async pushConnect(base) {
      // The floor of kernel -> page latency: an event read with fetch, answered by a POST.
      const response = await fetch(`${base}/events`, { cache: 'no-store' });
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          buffer += decoder.decode(value, { stream: true });
          const blocks = buffer.split('\n\n');
          buffer = blocks.pop();
          for (const block of blocks) {
            if (block.startsWith('data: ')) {
              fetch(`${base}/answer`, { method: 'POST', body: block.slice(6) });
            }
          }
        }
      })();
      return 'connected';
    },
  };
  return 'ready';
}"""

# A page opened by a plain headless Chromium (no automation protocol in between): bare fetch
# download and upload of the same bytes, its figures posted back to the bare app.
PLAIN_PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>plain floor</title></head><body>
<script>
const params = new URLSearchParams(location.search);
const size = Number(params.get('size'));
const runs = Number(params.get('runs'));
const words = new Uint32Array(Math.ceil(size / 4));
let x = 12345;
for (let i = 0; i < words.length; i++) {
  x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; words[i] = x;
}
const bytes = new Uint8Array(words.buffer, 0, size);
async function download() {
  const start = performance.now();
  const response = await fetch('/download', { cache: 'no-store' });
  const reader = response.body.getReader();
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    got += value.length;
  }
  return [got, performance.now() - start];
}
async function upload(body) {
  const start = performance.now();
  const response = await fetch('/upload', { method: 'POST', body });
  return [Number(await response.text()), performance.now() - start];
}
(async () => {
  const result = { download: [], upload: [] };
  try {
    await download();
    await upload(bytes.subarray(0, 8 << 20));
    for (let run = 0; run < runs; run += 1) {
      result.download.push(await download());
      result.upload.push(await upload(bytes));
    }
  } catch (error) {
    result.error = String(error);
  }
  await fetch('/report', { method: 'POST', body: JSON.stringify(result) });
})();
</script></body></html>
"""


def note(text: str) -> None:
    """A line in ``progress.log`` of the kernel's folder: what the kernel is doing, for the
    person running the benchmark (the cell's output shows only when the cell ends)."""
    with Path('progress.log').open('a') as log:
        log.write(f'{time.strftime("%H:%M:%S")} {text}\n')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return int(probe.getsockname()[1])


class KernelSide:
    """The kernel handler every lane's page calls."""

    def echo(self, value: Any) -> Any:
        return value

    def cpu(self) -> float:
        return time.process_time()

    async def read_stream(self, stream: Any) -> int:
        size = 0
        async for chunk in stream:
            size += len(chunk)
        return size


class Floor:
    """A bare aiohttp app on the kernel's loop, the floors' other end."""

    def __init__(self, size: int) -> None:
        self.data = random.Random(7).randbytes(size)
        self.runner: web.AppRunner | None = None
        self.url = ''
        self.events: web.StreamResponse | None = None
        self.connected = asyncio.Event()
        self.closing = asyncio.Event()
        self.waiting: dict[int, asyncio.Future[int]] = {}
        self.report: asyncio.Future[Any] | None = None

    async def start(self, port: int = 0) -> Floor:
        app = web.Application(client_max_size=1 << 40)
        app.router.add_get('/ws', self.ws)
        app.router.add_post('/rtt', self.rtt)
        app.router.add_get('/rtt', self.rtt_get)
        app.router.add_get('/events', self.stream)
        app.router.add_post('/answer', self.answer)
        app.router.add_get('/download', self.download)
        app.router.add_post('/upload', self.upload)
        app.router.add_get('/plain', self.plain)
        app.router.add_post('/report', self.reported)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        port = port or free_port()
        await web.TCPSite(self.runner, '127.0.0.1', port).start()
        self.url = f'http://127.0.0.1:{port}'
        return self

    async def stop(self) -> None:
        self.closing.set()
        if self.runner is not None:
            await self.runner.cleanup()

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        socket_ = web.WebSocketResponse()
        await socket_.prepare(request)
        async for message in socket_:
            if message.type == WSMsgType.TEXT:
                await socket_.send_str(message.data)
        return socket_

    async def rtt(self, request: web.Request) -> web.Response:
        return web.Response(text=await request.text(), headers=CORS)

    async def rtt_get(self, request: web.Request) -> web.Response:
        return web.Response(text=request.query.get('i', ''), headers=CORS)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={**CORS, 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache'}
        )
        await response.prepare(request)
        await response.write(b': open\n\n')
        self.events = response
        self.connected.set()
        await self.closing.wait()
        return response

    async def answer(self, request: web.Request) -> web.Response:
        number = int(await request.text())
        future = self.waiting.pop(number, None)
        if future is not None and not future.done():
            future.set_result(number)
        return web.Response(text='', headers=CORS)

    async def push(self, number: int) -> int:
        assert self.events is not None, 'the page has not opened the event stream'
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting[number] = future
        await self.events.write(b'data: %d\n\n' % number)
        return await future

    async def download(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={**CORS, 'Content-Type': 'application/octet-stream'})
        await response.prepare(request)
        view = memoryview(self.data)
        for start in range(0, len(self.data), MiB):
            await response.write(view[start : start + MiB])
        await response.write_eof()
        return response

    async def upload(self, request: web.Request) -> web.Response:
        size = 0
        while chunk := await request.content.readany():
            size += len(chunk)
        return web.Response(text=str(size), headers=CORS)

    async def plain(self, request: web.Request) -> web.Response:
        return web.Response(text=PLAIN_PAGE, content_type='text/html')

    async def reported(self, request: web.Request) -> web.Response:
        if self.report is not None and not self.report.done():
            self.report.set_result(json.loads(await request.text()))
        return web.Response(text='')

    def expect_report(self) -> None:
        self.report = asyncio.get_running_loop().create_future()

    async def wait_report(self, timeout: float) -> Any:
        assert self.report is not None, 'expect_report() first'
        return await asyncio.wait_for(self.report, timeout)


@dataclass
class Lane:
    """One library's server and its channel open in the tab."""

    name: str
    server: Any
    channel: Any
    predecessor: bool = False
    profiles: list[cProfile.Profile] = field(default_factory=list)

    async def call(self, name: str, *args: Any) -> Any:
        return await self.channel.call(name, *args, timeout=CALL_TIMEOUT)

    async def call_with_stream(self, name: str, stream: AsyncIterator[bytes]) -> Any:
        return await self.channel.call_with_stream(name, stream, timeout=CALL_TIMEOUT)

    def transport_loop(self) -> asyncio.AbstractEventLoop | None:
        """The transport thread's loop of a ``jchannel_http`` server that has one."""
        thread = getattr(self.server, '_thread', None)
        return getattr(thread, 'loop', None)

    async def stop(self) -> None:
        result = self.server.stop()
        if asyncio.isfuture(result) or asyncio.iscoroutine(result):
            await result


def page_side(lane: str) -> str:
    return PAGE_SIDE.replace('LANE', json.dumps(lane))


def predecessor_frontend(client_url: str) -> None:
    """Make ``jupyter-jchannel`` load its page client from ``client_url`` (an ES module).

    Its own frontend shows an ``ipywidgets.Output`` (which needs the widgets extension in
    the frontend) holding a classic script loaded from unpkg; here its code runs in a plain
    HTML output of the running cell instead, with the client imported as a module under a
    local name, so it does not replace ``jchannel_http``'s global ``jchannel`` in the tab.
    """
    import jchannel.server  # type: ignore[import-not-found]  # only in the benchmark kernel

    def run(code: str) -> None:
        script = (
            f'<script>import({json.dumps(client_url)}).then((module) => {{ '
            f'const jchannel = module.default; {code}; }});</script>'
        )
        display(HTML(script))

    jchannel.server.frontend.run = run


async def start_lanes(client_url: str) -> dict[str, Lane]:
    """Start the three lanes and open their channels in the tab running this cell."""
    import jchannel  # only in the benchmark kernel

    note('starting the lanes')
    lanes: dict[str, Lane] = {}
    choices: list[tuple[str, dict[str, Any]]] = [
        ('jchannel_http', {}),
        ('jchannel_http, transport_thread=False', {'transport_thread': False}),
    ]
    for name, options in choices:
        server = await jchannel_http.start(**options)
        channel = await server.open(page_side(name), timeout=60)
        channel.handler = KernelSide()
        lanes[name] = Lane(name, server, channel)
    predecessor_frontend(client_url)
    name = 'jupyter-jchannel 0.3.9'
    server = await jchannel.start(host='127.0.0.1', port=free_port())
    channel = await server.open(page_side(name), timeout=60)
    channel.handler = KernelSide()
    lanes[name] = Lane(name, server, channel, predecessor=True)
    return lanes


@dataclass
class Route:
    """A ``jchannel_http`` lane reached through an intermediary, and the bare floor app
    reached through the same kind of intermediary (``floor_url``). ``post`` is False on a
    path that refuses POST (the page then sends over GET, and the floors use GET)."""

    lane: Lane
    floor_url: str
    post: bool


async def start_paths(spec: list[dict[str, Any]]) -> dict[str, Route]:
    """Start one ``jchannel_http`` server per entry of ``spec`` (name, port, url, floor_url,
    post), at ``port`` and reached by the page at ``url``, its channel open in this tab."""
    paths = {}
    for entry in spec:
        note(f'opening a channel through {entry["name"]}')
        server = await jchannel_http.start(port=entry['port'], url=entry['url'])
        channel = await server.open(page_side(entry['name']), timeout=120, deadline=120)
        note(f'open through {entry["name"]}: {server.status().get("transport")}')
        channel.handler = KernelSide()
        lane = Lane(entry['name'], server, channel)
        paths[entry['name']] = Route(lane, entry['floor_url'], entry['post'])
    return paths


async def measure_paths(
    paths: dict[str, Route], *, warmup: int, sequential: int, concurrent: int, size: int
) -> dict[str, Any]:
    """The library's figures through each path, next to bare floors through the same kind of
    intermediary: a fetch round trip (GET where POST is refused), a download and, where POST
    passes, an upload in POSTs of 1 MiB (the body cap)."""
    figures: dict[str, Any] = {}
    data = random.Random(7).randbytes(size)
    parts = [data[start : start + MiB] for start in range(0, size, MiB)]
    for name, path in paths.items():
        lane, base = path.lane, path.floor_url
        method = 'POST' if path.post else 'GET'
        measure: dict[str, Any] = {'transport': lane.server.status().get('transport')}
        figures[name] = measure
        note(f'measuring through {name}')
        measure['fetch_rtt'] = await lane.call('fetchRoundTrip', base, warmup, sequential, method)
        await lane.call('bareDownload', base)
        measure['download'] = mb_per_s(await lane.call('bareDownload', base), size)
        if path.post:
            await lane.call('bareUploadChunks', base, 8 * MiB, MiB)
            measure['upload'] = mb_per_s(await lane.call('bareUploadChunks', base, size, MiB), size)
        measure['k2p_latency'] = await k2p_sequential(lane, warmup, sequential)
        measure['p2k_latency'] = await lane.call('runSequential', warmup, sequential)
        await k2p_concurrent(lane, concurrent // 10)
        measure['k2p_rate'] = await k2p_concurrent(lane, concurrent)
        await p2k_concurrent(lane, concurrent // 10)
        measure['p2k_rate'] = await p2k_concurrent(lane, concurrent)
        await lane.call_with_stream('readStream', chunks(parts[:8]))
        measure['k2p_stream'] = mb_per_s(
            await lane.call_with_stream('readStream', chunks(parts)), size
        )
        await lane.call('sendStream', 8 * MiB)
        measure['p2k_stream'] = mb_per_s(await lane.call('sendStream', size), size)
    return figures


async def chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def mb_per_s(answer: Any, size: int) -> float:
    got, milliseconds = answer
    assert got == size, f'{got} bytes arrived, not {size}'
    return size / 1e6 / (milliseconds / 1000)


async def k2p_sequential(lane: Lane, warmup: int, count: int) -> list[float]:
    for i in range(warmup):
        await lane.call('echo', i)
    times = []
    for i in range(count):
        start = time.perf_counter()
        value = await lane.call('echo', i)
        times.append((time.perf_counter() - start) * 1000)
        assert value == i, f'call {i} answered {value!r}'
    return times


async def k2p_concurrent(lane: Lane, count: int) -> dict[str, float]:
    cpu = time.process_time()
    start = time.perf_counter()
    values = await asyncio.gather(*(lane.call('echo', i) for i in range(count)))
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    assert list(values) == list(range(count)), 'the kernel -> page calls answered wrongly'
    return {'rate': count / seconds, 'cpu_us': cpu / count * 1e6}


async def p2k_concurrent(lane: Lane, count: int) -> dict[str, float]:
    milliseconds, cpu = await lane.call('runConcurrent', count)
    return {'rate': count / (milliseconds / 1000), 'cpu_us': cpu / count * 1e6}


async def measure_run(
    lanes: dict[str, Lane],
    floor: Floor,
    *,
    warmup: int,
    sequential: int,
    concurrent: int,
    size: int,
) -> dict[str, Any]:
    """One run of every figure: floors first, then each lane; plain numbers only."""
    base = floor.url
    any_lane = next(iter(lanes.values()))
    parts = [floor.data[start : start + MiB] for start in range(0, size, MiB)]
    figures: dict[str, Any] = {'floor': {}, 'lanes': {}}
    f = figures['floor']
    f['fetch_rtt'] = await any_lane.call('fetchRoundTrip', base, warmup, sequential)
    f['ws_rtt'] = await any_lane.call('wsRoundTrip', base, warmup, sequential)
    for i in range(warmup):
        await floor.push(i)
    times = []
    for i in range(sequential):
        start = time.perf_counter()
        await floor.push(i)
        times.append((time.perf_counter() - start) * 1000)
    f['push_post'] = times
    await any_lane.call('wsRate', base, concurrent // 10)
    f['ws_rate'] = concurrent / (await any_lane.call('wsRate', base, concurrent) / 1000)
    await any_lane.call('bareDownload', base)
    f['download'] = mb_per_s(await any_lane.call('bareDownload', base), len(floor.data))
    await any_lane.call('bareUpload', base, 8 * MiB)
    f['upload'] = mb_per_s(await any_lane.call('bareUpload', base, size), size)
    for name, lane in lanes.items():
        measure: dict[str, Any] = {}
        figures['lanes'][name] = measure
        measure['k2p_latency'] = await k2p_sequential(lane, warmup, sequential)
        measure['p2k_latency'] = await lane.call('runSequential', warmup, sequential)
        await k2p_concurrent(lane, concurrent // 10)
        measure['k2p_rate'] = await k2p_concurrent(lane, concurrent)
        await p2k_concurrent(lane, concurrent // 10)
        measure['p2k_rate'] = await p2k_concurrent(lane, concurrent)
        await lane.call_with_stream('readStream', chunks(parts[:8]))
        measure['k2p_stream'] = mb_per_s(
            await lane.call_with_stream('readStream', chunks(parts)), size
        )
        await lane.call('sendStream', 8 * MiB)
        measure['p2k_stream'] = mb_per_s(await lane.call('sendStream', size), size)
    return figures


async def connect_push(lanes: dict[str, Lane], floor: Floor) -> None:
    """Open the push floor's event stream in the tab."""
    note('opening the push floor')
    await next(iter(lanes.values())).call('pushConnect', floor.url)
    await asyncio.wait_for(floor.connected.wait(), 30)


# -- profiles ---------------------------------------------------------------------------------


async def profile_begin(lane: Lane) -> None:
    """Profile the kernel process. From Python 3.12 on, ``cProfile`` rides ``sys.monitoring``,
    which sees every thread: the kernel's loop and the transport thread alike (and allows one
    profiler at a time)."""
    lane.profiles = [cProfile.Profile()]
    lane.profiles[0].enable()


async def profile_end(lane: Lane, top: int = 16) -> str:
    """Stop the profile; its top entries by own and by cumulative time, as text."""
    lane.profiles[0].disable()
    out = io.StringIO()
    for order in ('tottime', 'cumulative'):
        out.write(f'--- by {order}\n')
        stats = pstats.Stats(lane.profiles[0], stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(top)
    return out.getvalue()


async def profile_calls(lane: Lane, count: int) -> dict[str, str]:
    """Profiles of ``count`` concurrent calls each way."""
    texts = {}
    await profile_begin(lane)
    await k2p_concurrent(lane, count)
    texts['kernel -> page'] = await profile_end(lane)
    await profile_begin(lane)
    await p2k_concurrent(lane, count)
    texts['page -> kernel'] = await profile_end(lane)
    return texts


async def profile_lanes(lanes: dict[str, Lane], count: int) -> dict[str, dict[str, str]]:
    """Profiles of both ``jchannel_http`` lanes (with and without the transport thread)."""
    return {
        name: await profile_calls(lane, count)
        for name, lane in lanes.items()
        if not lane.predecessor
    }


def emit(tag: str, value: Any) -> None:
    """Write ``value`` to ``<tag>.json`` in the kernel's folder (the notebook's), where the
    driver reads it."""
    Path(f'{tag}.json').write_text(json.dumps(value))
    print(f'wrote {tag}.json')
