"""``python -m jchannel_http demo``: a server with a sample channel, until interrupted.

The page (``page_url``) says what it is and what to try, shows the transport, the latency of a
call and the calls per second as numbers and a small live chart, moves bytes both ways with
progress bars, and lists the calls the kernel makes into it. The kernel side (``DemoHandler``)
also answers curl: README's "Driving it with curl" uses it.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

from ..errors import JChannelError
from ..kernel.channel import Channel
from ..kernel.progress import Source
from ..server import Server

log = logging.getLogger('jchannel_http.demo')

MiB = 1024 * 1024
MAX_DOWNLOAD = 256 * MiB
"""Largest stream ``DemoHandler.download`` makes."""
PATTERN = b'0123456789abcdef' * 4096
"""What ``download`` sends, repeated: readable in a file that curl saved."""

PAGE_CODE = r"""
(channel) => {
  const app = document.getElementById('jchannel-app') || document.body;
  app.innerHTML = `
    <style>
      .demo-figures { display: flex; gap: 1rem; flex-wrap: wrap; margin: 1rem 0; }
      .demo-figure { border: 1px solid #ddd; border-radius: 6px; padding: .5rem .9rem; min-width: 9rem; }
      .demo-figure b { display: block; font-size: 1.6rem; font-variant-numeric: tabular-nums; }
      .demo-figure small { color: #666; }
      .demo-bar { display: flex; align-items: center; gap: .6rem; margin: .4rem 0; }
      .demo-bar progress { width: 18rem; height: 1rem; }
      #demo-log { max-height: 9rem; overflow: auto; font-family: ui-monospace, monospace; font-size: 13px; }
      #demo-chart { border: 1px solid #ddd; border-radius: 6px; }
      #demo-intro { max-width: 46rem; }
    </style>
    <h2>Demo</h2>
    <p id="demo-intro">This tab is the page side of an RPC channel with a Python process
      (<code>python -m jchannel_http demo</code>), over plain HTTP: the kernel's messages come on
      an event stream (or long-poll), the page's go in POST requests. The figures below are
      measured here, live. Try the buttons; reload the tab or stop the server with Ctrl+C and
      start it again: the page reconnects and nothing is lost or repeated. The kernel calls this
      page every few seconds (the list at the bottom), and the curl commands it printed call the
      kernel without any page.</p>
    <div class="demo-figures">
      <div class="demo-figure"><small>transport</small><b id="demo-transport">-</b></div>
      <div class="demo-figure"><small>call latency, median ms</small><b id="demo-latency">-</b></div>
      <div class="demo-figure"><small>calls per second</small><b id="demo-rate">-</b></div>
    </div>
    <canvas id="demo-chart" width="480" height="90" aria-label="call latency, last 60 calls"></canvas>
    <p>
      <button id="demo-burst">1,000 calls at once</button>
      <button id="demo-multiply">multiply(6, 7)</button>
      <button id="demo-divide">divide(1, 0)</button>
      <button id="demo-echo">echo</button>
      Kernel answered: <output id="demo-answer">-</output>
    </p>
    <h3>Byte streams</h3>
    <div class="demo-bar">
      <button id="demo-download">download 32 MiB</button>
      <progress id="demo-download-bar" max="1" value="0"></progress>
      <span id="demo-download-text">kernel -> page</span>
    </div>
    <div class="demo-bar">
      <button id="demo-upload">upload 8 MiB</button>
      <progress id="demo-upload-bar" max="1" value="0"></progress>
      <span id="demo-upload-text">page -> kernel</span>
    </div>
    <h3>Calls from the kernel</h3>
    <ol id="demo-log"></ol>`;
  const byId = (id) => document.getElementById(id);
  const status = byId('jchannel-status');
  if (status && !status.closest('details')) {  // the raw server status stays, folded away
    const details = document.createElement('details');
    const summary = document.createElement('summary');
    summary.textContent = 'raw /status';
    status.before(details);
    details.append(summary, status);
    document.querySelectorAll('h2').forEach((h) => { if (h.textContent === 'Server status') h.remove(); });
  }
  const answer = byId('demo-answer');
  const run = async (promise) => {
    try {
      answer.textContent = JSON.stringify(await promise);
    } catch (error) {
      answer.textContent = error.name + ': ' + error.message;
    }
  };
  byId('demo-multiply').onclick = () => run(channel.call('multiply', 6, 7));
  byId('demo-divide').onclick = () => run(channel.call('divide', 1, 0));
  byId('demo-echo').onclick = () => run(channel.echo('ünïcode', 1.5, null, [], {}));

  const latencies = [];
  const chart = byId('demo-chart');
  const draw = () => {
    const context = chart.getContext('2d');
    const { width, height } = chart;
    context.clearRect(0, 0, width, height);
    const top = Math.max(1, ...latencies) * 1.25;
    context.fillStyle = '#666';
    context.font = '11px system-ui, sans-serif';
    context.fillText(top.toFixed(1) + ' ms', 4, 12);
    context.fillText('0', 4, height - 4);
    context.strokeStyle = '#2a6fdb';
    context.lineWidth = 2;
    context.beginPath();
    latencies.forEach((value, index) => {
      const x = 40 + (index * (width - 48)) / 59;
      const y = height - 6 - (value / top) * (height - 18);
      if (index === 0) context.moveTo(x, y); else context.lineTo(x, y);
    });
    context.stroke();
  };
  const median = (values) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  };
  const transport = () => {
    const client = self.jchannelClient;
    byId('demo-transport').textContent = (client && client.transport) ||
      (byId('jchannel-transport') || {}).textContent || '-';
  };
  const sample = async () => {
    const started = performance.now();
    try {
      await channel.call('multiply', 2, 3);
    } catch (error) {
      return;  // not connected just now: the next sample tries again
    }
    latencies.push(performance.now() - started);
    if (latencies.length > 60) latencies.shift();
    byId('demo-latency').textContent = median(latencies).toFixed(1);
    transport();
    draw();
  };
  const burst = async (count) => {
    const started = performance.now();
    const calls = [];
    for (let index = 0; index < count; index += 1) calls.push(channel.call('multiply', index, 2));
    const results = await Promise.all(calls);
    if (results[count - 1] !== (count - 1) * 2) throw new Error('a call came back wrong');
    const rate = count / ((performance.now() - started) / 1000);
    const figure = byId('demo-rate');
    figure.textContent = Math.round(rate).toLocaleString('en-US');
    figure.dataset.bursts = String(Number(figure.dataset.bursts || 0) + 1);
  };
  byId('demo-burst').onclick = () => burst(1000).catch((error) => { answer.textContent = String(error); });
  setInterval(sample, 500);
  sample().then(() => burst(300)).catch(() => {});

  const megabytes = (bytes) => (bytes / (1024 * 1024)).toFixed(1) + ' MiB';
  const bar = (name) => {
    const started = performance.now();
    return (progress) => {
      const meter = byId('demo-' + name + '-bar');
      meter.max = progress.total || 1;
      meter.value = progress.done;
      const seconds = (performance.now() - started) / 1000;
      const speed = (progress.done / (1024 * 1024) / Math.max(seconds, 1e-3)).toFixed(0);
      byId('demo-' + name + '-text').textContent = progress.finished
        ? 'done: ' + megabytes(progress.done) + ' in ' + seconds.toFixed(2) + ' s (' + speed + ' MiB/s)'
        : megabytes(progress.done) + ' of ' + megabytes(progress.total || 0);
    };
  };
  byId('demo-download').onclick = async () => {
    try {
      const stream = await channel.call('download', 32 * 1024 * 1024);
      stream.onprogress = bar('download');
      let size = 0;
      for await (const chunk of stream) size += chunk.length;
      if (size !== 32 * 1024 * 1024) throw new Error('received ' + size + ' bytes');
    } catch (error) {
      byId('demo-download-text').textContent = error.name + ': ' + error.message;
    }
  };
  byId('demo-upload').onclick = async () => {
    const size = 8 * 1024 * 1024;
    async function* chunks() {
      const block = new Uint8Array(256 * 1024).fill(97);
      for (let sent = 0; sent < size; sent += block.length) yield block;
    }
    try {
      const source = new jchannel.StreamSource(chunks(), { total: size, progress: bar('upload') });
      const summary = await channel.callWithStream('checksum', source, 'upload.bin');
      if (summary.bytes !== size) throw new Error('the kernel counted ' + summary.bytes + ' bytes');
    } catch (error) {
      byId('demo-upload-text').textContent = error.name + ': ' + error.message;
    }
  };

  const note = (text) => {
    const item = document.createElement('li');
    item.textContent = text;
    byId('demo-log').prepend(item);
    return text;
  };
  channel.handler = {
    indentLeft(line, count) { return note(line.padStart(line.length + count, '.')); },
    indentRight(line, count) { return note(line.padEnd(line.length + count, '.')); },
  };
  return 'demo ready';
}
"""


class DemoHandler:
    """The kernel object that the page's buttons (and curl) call."""

    def multiply(self, a: float, b: float) -> float:
        return a * b

    def divide(self, a: float, b: float) -> float:
        return a / b

    def download(self, size: int = 32 * MiB) -> Source:
        """A byte stream of ``size`` bytes (``0123456789abcdef`` repeated), its size declared."""
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_DOWNLOAD:
            raise ValueError(f'size must be an integer from 0 to {MAX_DOWNLOAD}, not {size!r}')

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, size, len(PATTERN)):
                yield PATTERN[: min(len(PATTERN), size - start)]

        return Source(chunks(), total=size)

    async def checksum(self, stream: Any, name: str) -> dict[str, Any]:
        """Read a stream the page sends and say what arrived: its size and SHA-256."""
        digest = hashlib.sha256()
        size = 0
        async for chunk in stream:
            digest.update(chunk)
            size += len(chunk)
        return {'name': name, 'bytes': size, 'sha256': digest.hexdigest()}


def demo_channel(server: Server) -> Channel:
    """The demo's channel on ``server``, named ``demo`` (curl calls it by that name)."""
    channel = Channel(server, PAGE_CODE, name='demo')
    channel.handler = DemoHandler()
    return channel


async def run(
    host: str = '127.0.0.1', port: int = 8765, interval: float = 2.0, calls: int | None = None
) -> None:
    """Serve the demo until cancelled; the kernel calls the page every ``interval`` seconds,
    ``calls`` times (None: with no end), and keeps answering the page afterwards."""
    async with Server(host, port) as server:
        print(f'Open this address in a browser: {server.page_url}', flush=True)
        channel = demo_channel(server)
        print(
            f'Try it with curl too: curl -X POST -H "Authorization: Bearer {server.token}" '
            f'-d "[6, 7]" {server.url}/channels/demo/call/multiply',
            flush=True,
        )
        while True:
            try:
                print('page:', await channel.open(timeout=None), flush=True)
                break
            except JChannelError as exc:
                log.info('waiting for a page: %s', exc)
        for count in itertools.count(1):
            if calls is not None and count > calls:
                await asyncio.Event().wait()  # the page and curl may still call the kernel
            await asyncio.sleep(interval)
            method = 'indentLeft' if count % 2 else 'indentRight'
            try:
                print(
                    f'kernel called {method}:',
                    repr(await channel.call(method, f'call {count}', 4, deadline=30)),
                    flush=True,
                )
            except (JChannelError, TimeoutError) as exc:
                print(f'kernel call {count} failed: {exc}', flush=True)
