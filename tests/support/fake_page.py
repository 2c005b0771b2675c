"""The page as raw HTTP: an event stream read event by event, and POSTs as the page sends them."""

from __future__ import annotations

import asyncio
import json

import aiohttp

import jchannel_http
from jchannel_http.values import loads


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
