"""A kernel server in a process of its own, for measuring its memory during big transfers.

Run as ``python stream_memory_server.py SIZE``: it prints one JSON line per step (the page URL,
``connected``, then the result of each transfer) so the test can watch its RSS from outside. The
page, opened by a plain headless Chromium, runs the page side of both transfers by itself.
"""

from __future__ import annotations

import asyncio
import json
import sys

import jchannel_http

PAGE_SIDE = r"""(channel) => {
  channel.handler = {
    async slowCount(stream, delayMs) {
      let size = 0;
      let sinceDelay = 0;
      for await (const chunk of stream) {
        size += chunk.length;
        sinceDelay += chunk.length;
        if (sinceDelay >= 1 << 20) {
          sinceDelay = 0;
          await new Promise((resolve) => setTimeout(resolve, delayMs));
        }
      }
      return size;
    },
    upload(size) {
      const block = new Uint8Array(1 << 20).map((_, i) => i & 255);
      async function* blocks() {
        for (let sent = 0; sent < size; sent += block.length) yield block;
      }
      return channel.callWithStream('slow_count', blocks());
    },
  };
  return 'ready';
}"""


class KernelSide:
    async def slow_count(self, stream: jchannel_http.MetaGenerator) -> int:
        size = 0
        async for chunk in stream:
            size += len(chunk)
            await asyncio.sleep(0.005)
        return size


def report(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def main(size: int) -> None:
    block = bytes(range(256)) * 4096

    async def blocks():
        for _ in range(size // len(block)):
            yield block

    async with jchannel_http.Server(heartbeat=5) as server:
        report(page_url=server.page_url)
        channel = await server.open(PAGE_SIDE, timeout=60)
        channel.handler = KernelSide()
        report(event='connected')
        down = await channel.call_with_stream('slowCount', blocks(), 10, timeout=60)
        report(event='down', size=down, held=server.streams.status()['held_bytes'])
        up = await channel.call('upload', size, timeout=None)
        report(event='up', size=up, held=server.streams.status()['held_bytes'])


if __name__ == '__main__':
    asyncio.run(main(int(sys.argv[1])))
