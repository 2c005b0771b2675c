"""Helpers for talking to a kernel server over HTTP in tests."""

from __future__ import annotations

import asyncio
import collections
import json

import aiohttp

import jchannel_http
from jchannel_http.values import loads

CHROMIUM = '/usr/bin/chromium'
"""Debian's chromium, which tests/run_all.sh installs."""
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run']
"""Without the networking flags Chromium keeps trying hosts it cannot reach."""


class EventReader:
    """Reads an event stream response event by event (comments are returned too)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.raw = b''

    async def block(self, timeout: float = 5) -> bytes:
        """The next blank-line-terminated block, raw."""
        async def read() -> bytes:
            while b'\n\n' not in self.raw:
                chunk = await self.response.content.readany()
                if not chunk:
                    raise EOFError('the stream ended')
                self.raw += chunk
            block, self.raw = self.raw.split(b'\n\n', 1)
            return block + b'\n\n'
        return await asyncio.wait_for(read(), timeout)

    async def event(self, timeout: float = 5) -> dict:
        """The next event (skipping comments), as {'id', 'event', 'data'} with data parsed."""
        while True:
            block = await self.block(timeout)
            if block.startswith(b':'):
                continue
            fields: dict = {}
            for line in block.decode().splitlines():
                name, _, value = line.partition(': ')
                fields[name] = value
            fields['data'] = loads(fields['data'])
            return fields


async def post(http: aiohttp.ClientSession, server: jchannel_http.Server, body: dict) -> tuple:
    """POST ``body`` to /messages as the page would (JSON.stringify escapes lone surrogates)."""
    async with http.post(f'{server.url}/messages', data=json.dumps(body),
                         headers={'Content-Type': 'application/json'}) as response:
        return response.status, await response.json(loads=loads)


class CutProxy:
    """A TCP proxy on a free loopback port whose connections the test can cut at will."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.cuts = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> 'CutProxy':
        self._server = await asyncio.start_server(self._serve, '127.0.0.1', 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection('127.0.0.1', self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}

    def cut(self) -> int:
        """Abort every open connection; return how many were cut."""
        writers = list(self._writers)
        for writer in writers:
            writer.transport.abort()
        self.cuts += 1
        return len(writers)

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


COUNTING_PAGE = '''(channel) => {
  window.channel = channel;
  window.seen = {};
  channel.handler = {
    count(id) { window.seen[id] = (window.seen[id] || 0) + 1; return id; },
  };
  return 'ready';
}'''
"""The page side of a channel whose ``count(id)`` counts, in ``window.seen``, each run per id."""


class CountingKernel:
    """The kernel side of the same: ``count(id)`` counts each run per id in ``seen``."""

    def __init__(self) -> None:
        self.seen: collections.Counter = collections.Counter()

    def count(self, call_id: int) -> int:
        self.seen[call_id] += 1
        return call_id


async def calls_both_ways(page, channel, ids: range) -> None:
    """Calls ``count(id)`` for ``ids`` each way at once (``COUNTING_PAGE``, ``CountingKernel``);
    each answer is its id."""
    kernel = asyncio.gather(*(channel.call('count', i, timeout=120) for i in ids))
    from_page = page.evaluate('''([start, stop]) => Promise.all(
        Array.from({length: stop - start}, (_, i) => channel.call('count', start + i)))''',
                              [ids.start, ids.stop])
    results, page_results = await asyncio.gather(kernel, from_page)
    assert results == list(ids) and page_results == list(ids)


async def check_each_ran_once(page, channel, count: int) -> None:
    """Each of ``count`` ids ran once on each side."""
    seen = await page.evaluate('window.seen')
    assert len(seen) == count and set(seen.values()) == {1}
    assert len(channel.handler.seen) == count and set(channel.handler.seen.values()) == {1}
