"""The page as raw HTTP, for the tests of the HTTP layer: an event stream read event by event,
POSTs as the page sends them, and a page client driven by hand."""

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
    async with http.post(
        f'{server.url}/messages',
        data=json.dumps(body),
        headers={'Content-Type': 'application/json'},
    ) as response:
        return response.status, await response.json(loads=loads)


async def open_events(
    http: aiohttp.ClientSession, server: jchannel_http.Server, client: str, **query: object
) -> tuple[aiohttp.ClientResponse, EventReader]:
    """GET /events as page ``client`` opens it (``query`` added, as strings); the response and
    its reader, nothing read yet."""
    params = {'client': client, **{key: str(value) for key, value in query.items()}}
    response = await http.get(
        f'{server.url}/events', params=params, headers={'Accept': 'text/event-stream'}
    )
    return response, EventReader(response)


async def open_page(
    http: aiohttp.ClientSession, server: jchannel_http.Server, client: str
) -> tuple[aiohttp.ClientResponse, EventReader, str]:
    """An event stream whose hello was read; the response, its reader and the session id."""
    response, reader = await open_events(http, server, client)
    hello = await reader.event()
    return response, reader, hello['data']['session']


class FakePage:
    """A hand-driven page client named ``client``: an open event stream and the frames it has
    seen; it numbers the frames it sends and answers the kernel's calls when told to."""

    def __init__(
        self, http: aiohttp.ClientSession, server: jchannel_http.Server, client: str
    ) -> None:
        self.http = http
        self.server = server
        self.client = client
        self.session = ''
        self.seq = 0
        self.response: aiohttp.ClientResponse | None = None
        self.reader: EventReader | None = None

    async def connect(self) -> FakePage:
        self.response, self.reader = await open_events(self.http, self.server, self.client)
        assert self.response.status == 200
        self.session = (await self.reader.event())['data']['session']
        return self

    async def send(self, *frames: dict, ack: int = 0) -> tuple:
        numbered = []
        for frame in frames:
            self.seq += 1
            numbered.append({'seq': self.seq, **frame})
        return await post(
            self.http,
            self.server,
            {'client': self.client, 'session': self.session, 'ack': ack, 'messages': numbered},
        )

    async def frame(self) -> dict:
        assert self.reader is not None
        return (await self.reader.event())['data']

    async def open(self, channel: jchannel_http.Channel) -> None:
        """Answer the kernel's open frame for ``channel``."""
        opening = channel.open()
        frame = await self.frame()
        assert (frame['type'], frame['channel']) == ('open', channel.key)
        status, _ = await self.send(
            {'type': 'result', 'call': frame['call'], 'value': None}, ack=frame['seq']
        )
        assert status == 200
        assert await opening is None

    async def round_trip(self, channel: jchannel_http.Channel, a: int, b: int) -> None:
        """The page calls the kernel and the kernel calls the page: both must work."""
        status, _ = await self.send(
            {
                'type': 'call',
                'call': self.seq + 1,
                'channel': channel.key,
                'name': 'multiply',
                'args': [a, b],
            }
        )
        assert status == 200
        assert (await self.frame())['value'] == a * b
        calling = channel.echo(a, b)
        frame = await self.frame()
        assert frame['type'] == 'echo'
        status, _ = await self.send(
            {'type': 'result', 'call': frame['call'], 'value': frame['args']}, ack=frame['seq']
        )
        assert status == 200
        assert await calling == [a, b]

    def close(self) -> None:
        if self.response is not None:
            self.response.close()
