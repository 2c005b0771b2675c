"""Page -> kernel over GET (the query form of query_form.py), over real HTTP, checked as the
page would use it behind a proxy that refuses POST and appends ``authuser=0``."""

from __future__ import annotations

import base64
import collections
import json
from typing import Any

import pytest

import jchannel_http
from jchannel_http.errors import ProtocolError
from jchannel_http.http.query_form import PartAssembly, decode_base64url
from support.fake_page import open_page

CLIENT = 'query-client-1'
EMPTY = 'W10'  # [] in base64url


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip('=')


class Counter:
    def __init__(self) -> None:
        self.seen: collections.Counter = collections.Counter()

    def count(self, value):
        self.seen[value if isinstance(value, int) else len(value)] += 1
        return value if isinstance(value, int) else len(value)

    async def save(self, stream):
        return (await stream.join()).decode()


async def hello(http, server):
    response, _, session = await open_page(http, server, CLIENT)
    return response, session


def calls(key: int, first: int, count: int, arg=None) -> list[dict]:
    return [
        {
            'seq': seq,
            'type': 'call',
            'call': seq,
            'channel': key,
            'name': 'count',
            'args': [seq if arg is None else arg],
        }
        for seq in range(first, first + count)
    ]


async def get_messages(http, server, session, ack=0, **query):
    params = {'client': CLIENT, 'session': session, 'ack': str(ack), **query, 'authuser': '0'}
    async with http.get(f'{server.url}/messages', params=params) as response:
        assert response.headers['Cache-Control'].startswith('no-store')
        return response.status, await response.json()


async def test_a_batch_in_one_get_is_taken_once_and_answered_with_frames(server, http) -> None:
    channel = jchannel_http.Channel(server, 'c', name='q')
    channel.handler = Counter()
    response, session = await hello(http, server)
    try:
        text = b64(json.dumps(calls(channel.key, 1, 3)).encode())
        status, answer = await get_messages(http, server, session, messages=text)
        assert status == 200 and answer['ack'] == 3
        again = await get_messages(http, server, session, messages=text)  # a lost answer
        assert again[0] == 200 and again[1]['ack'] == 3
        results = again[1]['frames']  # the same frames, carried again for the same ack
        while len(results) < 3:
            results += (await get_messages(http, server, session, ack=0, messages=EMPTY))[1][
                'frames'
            ]
        assert sorted(frame['value'] for frame in results) == [1, 2, 3]
        assert channel.handler.seen == {1: 1, 2: 1, 3: 1}
        assert server.status()['send_method'] == 'get'
    finally:
        response.close()


async def test_a_batch_in_parts_is_taken_when_its_last_part_arrives(server, http) -> None:
    channel = jchannel_http.Channel(server, 'c', name='q')
    channel.handler = Counter()
    response, session = await hello(http, server)
    try:
        text = b64(json.dumps(calls(channel.key, 1, 1, 'é' * 3000), ensure_ascii=False).encode())
        total = str(len(text))
        parts = [text[i : i + 3000] for i in range(0, len(text), 3000)]
        common = {'batch': 'b1', 'total': total}
        status, answer = await get_messages(
            http, server, session, offset='0', part=parts[0], **common
        )
        assert (status, answer) == (200, {'ack': 0, 'have': 3000})
        # a part sent again (its answer was lost) and one overlapping what is held
        await get_messages(http, server, session, offset='0', part=parts[0], **common)
        status, answer = await get_messages(
            http, server, session, offset='1500', part=text[1500:6000], **common
        )
        assert answer['have'] == 6000 and channel.handler.seen == {}
        status, answer = await get_messages(
            http, server, session, offset='6000', part=text[6000:], **common
        )
        assert status == 200 and answer['ack'] == 1 and 'frames' in answer
        assert channel.handler.seen == {3000: 1}
        # a part of a batch the server no longer holds: start again
        status, answer = await get_messages(
            http, server, session, offset='3000', part=parts[1], batch='b2', total=total
        )
        assert answer == {'ack': 1, 'have': 0}
    finally:
        response.close()


async def test_bad_query_forms_are_refused_with_400(server, http) -> None:
    response, session = await hello(http, server)
    try:
        for query in (
            {'messages': 'not base64!'},
            {'messages': b64(b'{"a": 1}')},
            {'batch': 'b', 'offset': '0', 'total': '2', 'part': 'abc'},
            {'batch': 'b', 'offset': 'x', 'total': '2', 'part': 'a'},
            {'batch': 'b' * 65, 'offset': '0', 'total': '2', 'part': 'a'},
        ):
            status, answer = await get_messages(http, server, session, **query)
            assert status == 400 and answer['error'] == 'bad_request', query
    finally:
        response.close()


async def test_an_upload_in_get_chunks_and_the_get_forms_of_ack_cancel_release(
    server, http
) -> None:
    channel = jchannel_http.Channel(server, 'c', name='q')
    channel.handler = Counter()
    response, session = await hello(http, server)
    try:
        frame = {
            'seq': 1,
            'type': 'call',
            'call': 1,
            'channel': channel.key,
            'name': 'save',
            'args': [],
            'stream': 1,
        }
        await get_messages(http, server, session, messages=b64(json.dumps([frame]).encode()))
        for offset, piece, end in ((0, b'hello ', False), (6, b'world', True)):
            headers = {'Stream-Offset': str(offset), **({'Stream-End': '1'} if end else {})}
            async with http.get(
                f'{server.url}/streams/up/1',
                headers=headers,
                params={'session': session, 'data': b64(piece), 'authuser': '0'},
            ) as answer:
                assert answer.status == 200 and (await answer.json())['stored']
        answers: list[Any] = []
        while not answers:
            answers = (await get_messages(http, server, session, ack=0, messages=EMPTY))[1][
                'frames'
            ]
        assert answers[0]['value'] == 'hello world'
        async with http.get(
            f'{server.url}/streams/down/9/cancel', params={'session': session}
        ) as answer:
            assert await answer.json() == {'cancelled': False}
        async with http.get(f'{server.url}/release', params={'client': CLIENT}) as answer:
            assert await answer.json() == {'released': True}
    finally:
        response.close()


async def test_a_request_line_of_max_url_passes_and_max_url_raises_the_bound() -> None:
    async with jchannel_http.Server(token='t' * 20, max_url=12000) as server:
        import aiohttp

        async with aiohttp.ClientSession(headers={'Authorization': 'Bearer ' + 't' * 20}) as http:
            url = f'{server.url}/status?pad={"x" * 11500}&authuser=0'
            async with http.get(url) as answer:
                assert answer.status == 200
    assert server.client_options()['maxUrl'] == 12000
    with pytest.raises(ValueError, match='max_url'):
        jchannel_http.Server(max_url=100)
    with pytest.raises(ValueError, match='send_method'):
        jchannel_http.Server(send_method='put')
    assert jchannel_http.Server(send_method='get').client_options()['sendMethod'] == 'get'


def test_the_assembly_decodes_only_well_formed_text() -> None:
    assert decode_base64url(b64(b'\x00\xff\x10'), 'x') == b'\x00\xff\x10'
    for bad in ('a', 'ab=c', 'a+b/'):
        with pytest.raises(ProtocolError):
            decode_base64url(bad, 'x')
    assembly = PartAssembly(max_body=30)
    with pytest.raises(ProtocolError, match='max_body'):
        assembly.add(('c', 's'), {'batch': 'b', 'offset': '0', 'total': '100', 'part': 'a'})


async def test_the_last_part_sent_again_gets_the_whole_batch_answer_again(server, http) -> None:
    channel = jchannel_http.Channel(server, 'c', name='q')
    channel.handler = Counter()
    response, session = await hello(http, server)
    try:
        text = b64(json.dumps(calls(channel.key, 1, 1, 'x' * 3000)).encode())
        common = {'batch': 'b1', 'total': str(len(text))}
        await get_messages(http, server, session, offset='0', part=text[:2000], **common)
        last = {'offset': '2000', 'part': text[2000:], **common}
        first_answer = (await get_messages(http, server, session, **last))[1]
        status, again = await get_messages(http, server, session, **last)  # its answer was lost
        assert status == 200 and 'frames' in again and again['ack'] == first_answer['ack'] == 1
        assert channel.handler.seen == {3000: 1}  # taken once
        # a part of an older batch in the middle is still one the server no longer holds
        status, answer = await get_messages(
            http, server, session, offset='2000', part=text[2000:2100], **common
        )
        assert answer == {'ack': 1, 'have': 0}
    finally:
        response.close()
