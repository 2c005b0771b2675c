"""Helpers for talking to a kernel server over HTTP in tests."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

import jchannel_http


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
            fields['data'] = orjson.loads(fields['data'])
            return fields


async def post(http: aiohttp.ClientSession, server: jchannel_http.Server, body: dict) -> tuple:
    async with http.post(f'{server.url}/messages', data=orjson.dumps(body),
                         headers={'Content-Type': 'application/json'}) as response:
        return response.status, await response.json()
