"""The stream endpoints over real HTTP, as README's curl examples use them, bytes checked."""

from __future__ import annotations

import asyncio

import pytest

import jchannel_http
from jchannel_http import FrontendError, StateError
from support.fake_page import open_page, post

CLIENT = 'stream-client-1'


class Saver:
    def __init__(self) -> None:
        self.saved: dict[str, bytes] = {}
        self.gate = asyncio.Event()

    async def save(self, stream, name):
        self.saved[name] = await stream.join()
        return len(self.saved[name])

    async def gated(self, stream):
        chunks = []
        async for chunk in stream:
            chunks.append(chunk)
            await self.gate.wait()  # reads one chunk, then waits until the test opens the gate
        return len(b''.join(chunks))


async def page(http, server):
    """An event stream as the page opens it; returns (response, reader, session)."""
    return await open_page(http, server, CLIENT)


async def chunk(http, server, session, key, offset, data, end=False, **headers):
    headers = {'Stream-Offset': str(offset), **headers}
    if end:
        headers['Stream-End'] = '1'
    async with http.post(
        f'{server.url}/streams/up/{key}', params={'session': session}, data=data, headers=headers
    ) as response:
        return response.status, await response.json()


async def test_chunks_in_any_order_with_repeats_reach_a_handler_once(server, http) -> None:
    channel = jchannel_http.Channel(server, 'c', name='files')
    channel.handler = Saver()
    response, reader, session = await page(http, server)
    try:
        assert await chunk(http, server, session, 1, 6, b'world', end=True) == (
            200,
            {'stored': True, 'received': 0, 'state': 'open', 'chunk_size': 524288, 'in_flight': 4},
        )
        assert (await chunk(http, server, session, 1, 0, b'hello '))[1]['state'] == 'done'
        assert (await chunk(http, server, session, 1, 0, b'hello wo'))[1]['received'] == 11
        assert await post(
            http,
            server,
            {
                'client': CLIENT,
                'session': session,
                'ack': 0,
                'messages': [
                    {
                        'seq': 1,
                        'type': 'call',
                        'call': 1,
                        'channel': channel.key,
                        'name': 'save',
                        'args': ['x.txt'],
                        'stream': 1,
                    }
                ],
            },
        ) == (200, {'ack': 1})
        event = await reader.event()
        assert event['data'] == {'seq': 1, 'type': 'result', 'call': 1, 'value': 11}
        assert channel.handler.saved == {'x.txt': b'hello world'}
    finally:
        response.close()


async def test_a_download_resumes_from_any_offset_and_ends_with_its_size(server, http) -> None:
    channel = jchannel_http.Channel(server, 'c')
    channel._open = True
    channel._opened_in = server.link.session.id
    data = bytes(range(256)) * 4000

    async def produce():
        for start in range(0, len(data), 100_000):
            yield data[start : start + 100_000]

    response, reader, session = await page(http, server)
    try:
        calling = channel.call_with_stream('save', produce(), 'y', timeout=10)
        event = await reader.event()
        assert event['data']['stream'] == 1 and event['data']['name'] == 'save'
        url = f'{server.url}/streams/down/1'
        async with http.get(url, params={'session': session, 'offset': '0'}) as got:
            assert got.headers['Content-Type'] == 'application/octet-stream'
            first = await got.content.read(300_000)  # then the connection is dropped
        for _ in range(100):  # the producer finishes while nothing is acknowledged
            if server.streams.downloads[1].finished:
                break
            await asyncio.sleep(0.02)
        async with http.get(url, params={'session': session, 'offset': '1000'}) as got:
            assert got.headers['Stream-End'] == str(len(data))
            rest = await got.read()
        assert first[:1000] + rest == data
        async with http.post(
            f'{url}/ack',
            params={'session': session},
            headers={'Stream-Offset': str(len(data)), 'Stream-End': '1'},
        ) as ack:
            assert await ack.json() == {'acked': len(data)}
        async with http.get(url, params={'session': session, 'offset': '0'}) as gone:
            assert gone.status == 404
        await post(
            http,
            server,
            {
                'client': CLIENT,
                'session': session,
                'ack': 1,
                'messages': [{'seq': 1, 'type': 'result', 'call': 1, 'value': 'ok'}],
            },
        )
        assert await calling == 'ok'
    finally:
        response.close()


async def test_refusals_say_what_to_do(server, http) -> None:
    response, _reader, session = await page(http, server)
    try:
        status, body = await chunk(http, server, session, 1, 0, b'x' * (524288 + 1))
        assert (status, body['error'], body['chunk_size']) == (413, 'too_large', 524288)
        status, body = await chunk(http, server, 'old-session', 1, 0, b'x')
        assert (status, body['error']) == (410, 'resync')
        async with http.post(
            f'{server.url}/streams/up/1', params={'session': session}, data=b'x'
        ) as missing:
            assert missing.status == 400
            assert 'Stream-Offset' in (await missing.json())['message']
        async with http.get(f'{server.url}/streams/down/9', params={'session': session}) as unknown:
            assert unknown.status == 404
        await chunk(http, server, session, 2, 0, b'abc', end=True)
        status, body = await chunk(http, server, session, 2, 3, b'd')
        assert status == 400 and 'after the end' in body['message']
    finally:
        response.close()


async def test_a_producer_error_is_a_422_after_its_bytes(server, http) -> None:
    channel = jchannel_http.Channel(server, 'c')
    channel._open = True
    channel._opened_in = server.link.session.id

    async def failing():
        yield b'12345'
        raise KeyError('gone')

    response, reader, session = await page(http, server)
    try:
        channel.pipe(failing(), timeout=10)
        await reader.event()
        url = f'{server.url}/streams/down/1'
        async with http.get(url, params={'session': session}) as got:
            assert await got.read() == b'12345'
            assert 'Stream-End' not in got.headers
        async with http.get(url, params={'session': session, 'offset': '5'}) as failed:
            assert failed.status == 422
            assert await failed.json() == {
                'error': 'stream_error',
                'name': 'KeyError',
                'message': "'gone'",
            }
    finally:
        response.close()


async def test_a_full_window_holds_chunks_then_a_page_error_reaches_the_consumer(http) -> None:
    async with jchannel_http.Server(
        token='test-token-0123456789', heartbeat=0.3, stream_buffer=10
    ) as server:
        channel = jchannel_http.Channel(server, 'c')
        channel.handler = Saver()
        response, reader, session = await page(http, server)
        try:
            await post(
                http,
                server,
                {
                    'client': CLIENT,
                    'session': session,
                    'ack': 0,
                    'messages': [
                        {
                            'seq': 1,
                            'type': 'call',
                            'call': 1,
                            'channel': channel.key,
                            'name': 'gated',
                            'args': [],
                            'stream': 1,
                        }
                    ],
                },
            )
            assert (await chunk(http, server, session, 1, 0, b'a' * 10))[1]['stored'] is True
            for _ in range(100):  # the consumer takes the first chunk, then waits
                if server.streams.uploads[1].core.consumed == 10:
                    break
                await asyncio.sleep(0.01)
            assert (await chunk(http, server, session, 1, 10, b'b' * 10))[1]['stored'] is True
            # 10 bytes wait unread: the window (stream_buffer=10) is full, the chunk is held
            # for a heartbeat and refused
            status, body = await chunk(http, server, session, 1, 20, b'c' * 10)
            assert (status, body['stored'], body['received']) == (200, False, 20)
            channel.handler.gate.set()
            status, body = await chunk(http, server, session, 1, 20, b'c' * 10)
            assert (status, body['stored'], body['received']) == (200, True, 30)
            async with http.post(
                f'{server.url}/streams/up/1/error',
                params={'session': session},
                json={'name': 'RangeError', 'message': 'page broke'},
            ) as failed:
                assert failed.status == 200
            event = await reader.event()
            assert event['data']['type'] == 'error'
            assert (event['data']['name'], event['data']['message']) == (
                'FrontendError',
                'RangeError: page broke',
            )
        finally:
            response.close()


async def test_a_new_session_fails_the_streams_of_the_old_one(server, http) -> None:
    hub = server.streams
    upload = hub.receive(1)
    server.renew('a test renewed the session')
    with pytest.raises(StateError, match='renewed the session'):
        await upload.join()
    assert hub.status() == {'uploads': 0, 'downloads': 0, 'held_bytes': 0}
    assert isinstance(FrontendError('a', 'b'), Exception)


async def test_stream_response_bytes_caps_each_response(http) -> None:
    async with jchannel_http.Server(
        token='test-token-0123456789', heartbeat=1, stream_response_bytes=1000
    ) as server:
        channel = jchannel_http.Channel(server, 'c')
        channel._open = True
        channel._opened_in = server.link.session.id
        data = bytes(range(256)) * 10

        async def produce():
            yield data

        response, reader, session = await page(http, server)
        try:
            piping = channel.pipe(produce(), timeout=10)
            await reader.event()
            url = f'{server.url}/streams/down/1'
            pieces, offset, ends = [], 0, []
            for _ in range(10):
                async with http.get(url, params={'session': session, 'offset': str(offset)}) as got:
                    piece = await got.read()
                    ends.append(got.headers.get('Stream-End'))
                pieces.append(piece)
                offset += len(piece)
                if ends[-1] is not None and offset == int(ends[-1]):
                    break
            assert [len(piece) for piece in pieces] == [1000, 1000, 560]
            # the size, in every response once the producer finished (the first one may come
            # before the producer's end is known: it is read on the caller's loop)
            assert ends[-1] == str(len(data))
            assert all(end in (None, str(len(data))) for end in ends)
            assert ends[ends.index(str(len(data))) :] == [str(len(data))] * (
                len(ends) - ends.index(str(len(data)))
            )
            assert b''.join(pieces) == data
            piping.cancel()
        finally:
            response.close()
