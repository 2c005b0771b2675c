"""The page and kernel sides most browser tests call both ways: indentation, a slow echo, a
counted call per id (``window.seen`` and ``KernelSide.seen``) and a page handler that throws."""

from __future__ import annotations

import asyncio
import collections

PAGE_SIDE = """(channel) => {
  window.channel = channel;
  window.seen = {};
  channel.handler = {
    indentLeft(line, count) { return line.padStart(line.length + count); },
    indentRight(line, count) { return line.padEnd(line.length + count); },
    async later(value) { await new Promise((r) => setTimeout(r, 5)); return value; },
    count(id) { window.seen[id] = (window.seen[id] || 0) + 1; return id; },
    fail() { throw new RangeError('out of range'); },
  };
  return 'ready';
}"""


class KernelSide:
    def __init__(self) -> None:
        self.seen: collections.Counter = collections.Counter()

    def multiply(self, a, b):
        return a * b

    def divide(self, a, b):
        return a / b

    async def slow_echo(self, value):
        await asyncio.sleep(0.001)
        return value

    def count(self, call_id):
        self.seen[call_id] += 1
        return call_id
