"""Security and bad input over real HTTP: the token, origins, limits, and a JSON error for
every kind of bad request while a connected client keeps working."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import orjson
import pytest

import jchannel_http
from jchannel_http.http.app import IN_FLIGHT
from support.fake_page import FakePage, post
from support.kernel_server import TOKEN

CLIENT = 'security-client-1'
OTHER = 'security-client-2'
JSON_HEADERS = {'Content-Type': 'application/json'}


class Handler:
    def __init__(self) -> None:
        self.calls: list = []

    def multiply(self, a, b):
        self.calls.append(('multiply', a, b))
        return a * b

    def divide(self, a, b):
        return a / b

    def _secret(self):
        self.calls.append('secret')


@pytest.fixture
async def page(server, http) -> AsyncIterator[FakePage]:
    page = await FakePage(http, server, CLIENT).connect()
    yield page
    page.close()


def frame_call(**fields) -> dict:
    return {'seq': 1, 'type': 'call', 'call': 1, 'channel': 1, 'name': 'f', 'args': [], **fields}


def body(messages: list, **fields) -> bytes:
    return orjson.dumps(
        {'client': CLIENT, 'session': 'SESSION', 'ack': 0, 'messages': messages, **fields}
    )


# (what, method, path, request options, status, error code, a fragment of the message)
BAD_INPUTS: list[tuple[str, str, str, dict[str, Any], int, str, str]] = [
    (
        'malformed JSON',
        'POST',
        '/messages',
        {'data': b'{"client": '},
        400,
        'bad_request',
        'not valid JSON',
    ),
    (
        'a JSON array body',
        'POST',
        '/messages',
        {'data': b'[]'},
        400,
        'bad_request',
        'must be a JSON object',
    ),
    (
        'an unknown field',
        'POST',
        '/messages',
        {'data': body([], extra=1)},
        400,
        'bad_request',
        "unknown field(s) ['extra']",
    ),
    (
        'a boolean sequence number',
        'POST',
        '/messages',
        {'data': body([frame_call(seq=True)])},
        400,
        'bad_request',
        "field 'seq' must be a positive integer",
    ),
    (
        'an integer beyond 64 bits',
        'POST',
        '/messages',
        {'data': body([]).replace(b'"ack":0', b'"ack":123456789012345678901234567890')},
        400,
        'bad_request',
        "field 'ack' must be a non-negative integer",
    ),
    (
        'a number too large for a double',
        'POST',
        '/messages',
        {'data': body([frame_call()]).replace(b'"seq":1', b'"seq":1e400')},
        400,
        'bad_request',
        'not valid JSON',
    ),
    (
        'JSON nested too deep',
        'POST',
        '/messages',
        {'data': b'[' * 2000 + b']' * 2000},
        400,
        'bad_request',
        'not valid JSON',
    ),
    (
        'a malformed client id',
        'GET',
        '/events',
        {'params': {'client': 'x'}},
        400,
        'bad_request',
        'client must be',
    ),
    (
        'a cursor in other digits',
        'GET',
        '/events',
        {'params': {'client': OTHER, 'cursor': '²'}},
        400,
        'bad_request',
        'cursor must be a non-negative integer',
    ),
    (
        'a cursor of 5000 digits',
        'GET',
        '/events',
        {'params': {'client': OTHER, 'cursor': '9' * 5000}},
        400,
        'bad_request',
        'cursor must be a non-negative integer',
    ),
    (
        'a Last-Event-ID that is no number',
        'GET',
        '/events',
        {'params': {'client': OTHER}, 'headers': {'Last-Event-ID': '-1'}},
        400,
        'bad_request',
        'Last-Event-ID must be a non-negative integer',
    ),
    (
        'a bad cursor beside a good Last-Event-ID',
        'GET',
        '/events',
        {'params': {'client': OTHER, 'cursor': 'x'}, 'headers': {'Last-Event-ID': '0'}},
        400,
        'bad_request',
        'cursor must be a non-negative integer',
    ),
    (
        'an unknown channel',
        'POST',
        '/channels/nothing/call/multiply',
        {'data': b'[1, 2]'},
        404,
        'not_found',
        "no channel 'nothing'",
    ),
    (
        'a channel key in other digits',
        'POST',
        '/channels/%C2%B2/call/multiply',
        {'data': b'[1, 2]'},
        404,
        'not_found',
        'no channel',
    ),
    (
        'an unknown method',
        'POST',
        '/channels/math/call/power',
        {'data': b'[1, 2]'},
        404,
        'not_found',
        "no method 'power'",
    ),
    (
        'a private method',
        'POST',
        '/channels/math/call/_secret',
        {'data': b'[]'},
        404,
        'not_found',
        'is private',
    ),
    (
        'arguments that are no array',
        'POST',
        '/channels/math/call/multiply',
        {'data': b'{"a": 1}'},
        400,
        'bad_request',
        'JSON array of arguments',
    ),
    (
        'a method that raises',
        'POST',
        '/channels/math/call/divide',
        {'data': b'[1, 0]'},
        422,
        'handler_error',
        'division by zero',
    ),
    ('an unknown endpoint', 'GET', '/admin', {}, 404, 'not_found', 'no such endpoint'),
    (
        'a method an endpoint does not take',
        'PUT',
        '/status',
        {},
        405,
        'method_not_allowed',
        'PUT is not allowed',
    ),
    (
        'a body over max_body',
        'POST',
        '/messages',
        {'data': b' ' * (1024 * 1024 + 1)},
        413,
        'too_large',
        'larger than max_body',
    ),
    (
        'a chunked body over max_body',
        'POST',
        '/channels/math/call/multiply',
        {'chunks': 40 * [b' ' * 32768]},
        413,
        'too_large',
        'larger than max_body',
    ),
    (
        'a second client streaming',
        'GET',
        '/events',
        {'params': {'client': OTHER}},
        409,
        'client_conflict',
        'another page is connected',
    ),
    (
        'a second client posting',
        'POST',
        '/messages',
        {'data': orjson.dumps({'client': OTHER, 'session': 'x', 'messages': []})},
        409,
        'client_conflict',
        'another page is connected',
    ),
    (
        'a session that is over',
        'POST',
        '/messages',
        {'data': body([])},
        410,
        'resync',
        'the session is over',
    ),
    ('no token', 'GET', '/status', {'token': None}, 401, 'unauthorized', 'a valid token'),
    (
        'a wrong token',
        'POST',
        '/messages',
        {'token': 'wrong', 'data': body([])},
        401,
        'unauthorized',
        'a valid token',
    ),
    (
        'a token one character short',
        'GET',
        '/status',
        {'token': TOKEN[:-1]},
        401,
        'unauthorized',
        'a valid token',
    ),
    (
        'a token in the wrong scheme',
        'GET',
        '/status',
        {'token': None, 'headers': {'Authorization': f'Basic {TOKEN}'}},
        401,
        'unauthorized',
        'a valid token',
    ),
    (
        'a non-ASCII token',
        'GET',
        '/status',
        {'token': None, 'raw_auth': b'Bearer \xe9\xff'},
        401,
        'unauthorized',
        'a valid token',
    ),
    (
        'a wrong token in the query',
        'GET',
        '/events',
        {'token': None, 'params': {'client': OTHER, 'token': 'wrong'}},
        401,
        'unauthorized',
        'a valid token',
    ),
]


async def send_raw(
    server: jchannel_http.Server, method: str, path: str, authorization: bytes
) -> tuple[int, dict[str, str], bytes]:
    """A request with header bytes no HTTP library would send."""
    reader, writer = await asyncio.open_connection('127.0.0.1', server.port)
    try:
        writer.write(
            b'%b %b HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %b\r\n'
            b'Connection: close\r\n\r\n' % (method.encode(), path.encode(), authorization)
        )
        raw = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, content = raw.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    headers = dict(line.split(': ', 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, content


async def request(
    server: jchannel_http.Server, method: str, path: str, options: dict
) -> tuple[int, dict[str, str], bytes]:
    options = dict(options)
    token = options.pop('token', TOKEN)
    if 'raw_auth' in options:
        return await send_raw(server, method, path, options.pop('raw_auth'))
    headers = dict(options.pop('headers', {}))
    if token is not None:
        headers['Authorization'] = f'Bearer {token}'
    if 'chunks' in options:
        chunks = options.pop('chunks')

        async def stream():
            for chunk in chunks:
                yield chunk

        options['data'] = stream()
    async with aiohttp.ClientSession() as session:
        async with session.request(
            method, server.url + path, headers=headers, **options
        ) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                await response.read(),
            )


def check_json_error(
    status: int,
    headers: dict[str, str],
    content: bytes,
    expected_status: int,
    code: str,
    fragment: str,
) -> None:
    assert status == expected_status, content
    assert headers['content-type'] == 'application/json'
    error = orjson.loads(content)
    assert error['error'] == code
    assert fragment in error['message']
    assert TOKEN not in content.decode('utf-8', 'replace')
    assert 'Traceback' not in error['message']
    assert 'access-control-allow-credentials' not in headers


async def test_each_bad_input_gets_its_status_and_a_json_error_while_a_client_works(
    server, page
) -> None:
    channel = jchannel_http.Channel(server, '(channel) => {}', name='math')
    channel.handler = Handler()
    await page.open(channel)
    await page.round_trip(channel, 2, 3)
    before = server.status()
    for what, method, path, options, status, code, fragment in BAD_INPUTS:
        answer = await request(server, method, path, options)
        try:
            check_json_error(*answer, status, code, fragment)
        except AssertionError as exc:
            raise AssertionError(f'{what}: {exc}') from exc
    after = server.status()
    for key in ('session', 'client', 'sent', 'acked', 'received', 'connected'):
        assert after[key] == before[key], key
    assert channel.handler.calls == [('multiply', 2, 3)]
    await page.round_trip(channel, 4, 5)


# Items of a batch that are not valid frames: each fails only its own call, with an error frame
# (what, the item, a fragment of the error's message)
BAD_FRAMES = [
    ('an unknown message type', {'type': 'launch'}, "unknown frame type 'launch'"),
    ('an unknown frame field', frame_call(eval='x'), "unknown field(s) ['eval'] in a 'call' frame"),
    (
        'a missing frame field',
        {'type': 'call', 'channel': 1, 'name': 'f'},
        "needs the field 'args'",
    ),
    ('a field of the wrong type', frame_call(args='[]'), "field 'args' must be a JSON list"),
    (
        'an open frame from the page',
        {'type': 'open', 'channel': 1, 'code': '() => { window.pwned = true; }'},
        "'open' frames cannot be sent",
    ),
]


async def test_each_bad_frame_fails_only_its_own_call_and_reaches_no_handler(server, page) -> None:
    channel = jchannel_http.Channel(server, '(channel) => {}', name='math')
    channel.handler = Handler()
    await page.open(channel)
    for what, item, fragment in BAD_FRAMES:
        call = page.seq + 1000
        frame = {**item, 'call': call}
        frame.pop('seq', None)
        status, answer = await page.send(frame)
        assert (status, answer) == (200, {'ack': page.seq}), what
        reply = await page.frame()
        assert (reply['type'], reply['call'], reply['name']) == ('error', call, 'ProtocolError'), (
            what
        )
        assert fragment in reply['message'], (what, reply['message'])
        assert 'Traceback' not in reply['message']
    assert channel.handler.calls == []
    await page.round_trip(channel, 4, 5)


async def test_a_refused_batch_takes_none_of_its_frames(http) -> None:
    async with jchannel_http.Server(token=TOKEN, max_ahead=2) as server:
        channel = jchannel_http.Channel(server, 'c')
        channel.handler = Handler()
        page = await FakePage(http, server, CLIENT).connect()
        try:
            call = {'type': 'call', 'channel': channel.key, 'name': 'multiply', 'args': [6, 7]}
            batch = [{'seq': seq, 'call': seq, **call} for seq in (1, 5, 6, 7)]
            status, error = await post(
                http, server, {'client': CLIENT, 'session': page.session, 'messages': batch}
            )
            assert status == 400 and 'too far ahead' in error['message']
            assert server.status()['received'] == 0
            status, answer = await post(
                http, server, {'client': CLIENT, 'session': page.session, 'messages': batch[:1]}
            )
            assert (status, answer) == (200, {'ack': 1})
            assert (await page.frame())['value'] == 42
            assert channel.handler.calls == [('multiply', 6, 7)]
        finally:
            page.close()


async def test_a_page_call_to_an_unknown_channel_fails_that_call_only(server, page) -> None:
    status, answer = await page.send(
        {'type': 'call', 'call': 1, 'channel': 999, 'name': 'f', 'args': []}
    )
    assert (status, answer) == (200, {'ack': 1})
    frame = await page.frame()
    assert (frame['type'], frame['call'], frame['name']) == ('error', 1, 'StateError')
    assert frame['message'] == 'no channel 999 on the kernel'


async def test_a_traceback_only_with_debug(http) -> None:
    for debug in (False, True):
        async with jchannel_http.Server(token=TOKEN, debug=debug) as server:
            channel = jchannel_http.Channel(server, 'c', name='math')
            channel.handler = Handler()
            async with http.post(
                f'{server.url}/channels/math/call/divide', data=b'[1, 0]'
            ) as response:
                error = await response.json()
            assert response.status == 422 and error['name'] == 'ZeroDivisionError'
            page = await FakePage(http, server, CLIENT).connect()
            try:
                await page.send(
                    {
                        'type': 'call',
                        'call': 1,
                        'channel': channel.key,
                        'name': 'divide',
                        'args': [1, 0],
                    }
                )
                frame = await page.frame()
            finally:
                page.close()
            assert frame['name'] == 'ZeroDivisionError'
            for message in (error['message'], frame['message']):
                assert message.startswith('division by zero')
                if debug:
                    assert 'Traceback (most recent call last)' in message
                    assert 'in divide' in message and 'return a / b' in message
                else:
                    assert message == 'division by zero'


NOT_HTTP = [
    b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + bytes(range(32)),  # a TLS client hello
    b'GET /status?token=%b HTTP/1.1\r\nHost: x\r\nNo colon in this header\r\n\r\n' % TOKEN.encode(),
    b'GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n',
    b'POST /messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    b'\x00' * 64 + b'\r\n\r\n',
]


async def test_bytes_that_are_not_http_get_400_and_no_log_above_debug(server, http, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    for garbage in NOT_HTTP:
        reader, writer = await asyncio.open_connection('127.0.0.1', server.port)
        try:
            writer.write(garbage)
            answer = await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()
        assert answer.split(b'\r\n', 1)[0].split(b' ', 2)[1] == b'400', answer
    loud = [
        record
        for record in caplog.records
        if record.levelno > logging.DEBUG
        and not record.getMessage().startswith('jchannel_http: open ')
    ]
    assert loud == []
    quiet = [record for record in caplog.records if record.name == 'jchannel_http.http']
    assert quiet and {record.levelno for record in quiet} == {logging.DEBUG}
    async with http.get(f'{server.url}/status') as response:
        assert response.status == 200


# -- the token ---------------------------------------------------------------------------------


def test_the_default_token_is_32_random_bytes() -> None:
    tokens = {jchannel_http.Server().token for _ in range(3)}
    assert len(tokens) == 3
    for token in tokens:
        assert len(base64.urlsafe_b64decode(token + '=' * (-len(token) % 4))) == 32


async def test_every_token_check_is_constant_time(server, monkeypatch) -> None:
    compared = []

    def spy(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return secrets_compare(given, expected)

    secrets_compare = secrets.compare_digest
    monkeypatch.setattr(secrets, 'compare_digest', spy)
    async with aiohttp.ClientSession() as bare:
        for headers, params, status in [
            ({'Authorization': f'Bearer {TOKEN}'}, {}, 200),
            ({'Authorization': 'Bearer wrong'}, {}, 401),
            ({}, {'token': TOKEN}, 200),
            ({}, {'token': TOKEN + 'x'}, 401),
        ]:
            async with bare.get(f'{server.url}/status', headers=headers, params=params) as response:
                assert response.status == status
    assert [expected for _, expected in compared] == [TOKEN.encode()] * 4
    assert [given for given, _ in compared] == [
        TOKEN.encode(),
        b'wrong',
        TOKEN.encode(),
        TOKEN.encode() + b'x',
    ]


async def test_the_token_is_logged_once_and_never_answered(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    async with jchannel_http.Server(debug=True) as server:
        token = server.token
        channel = jchannel_http.Channel(server, 'c', name='math')
        channel.handler = Handler()
        auth = {'Authorization': f'Bearer {token}'}
        seen = []
        async with aiohttp.ClientSession() as bare:
            for method, path, kwargs in [
                ('GET', '/status', {'headers': {'Authorization': f'Bearer {token}x'}}),
                ('GET', '/status', {'params': {'token': token[:-1]}}),
                ('POST', '/messages', {'headers': auth, 'data': b'{'}),
                ('POST', '/messages', {'params': {'token': token}, 'data': b'[]'}),
                ('GET', '/events', {'params': {'token': token, 'client': 'no'}}),
                ('POST', '/channels/math/call/divide', {'headers': auth, 'data': b'[1,0]'}),
                ('POST', '/channels/math/call/none', {'headers': auth}),
                ('POST', '/release', {'params': {'token': token, 'client': CLIENT}}),
                ('GET', '/page', {'params': {'token': token}}),
                ('GET', '/nowhere', {'params': {'token': token}}),
            ]:
                async with bare.request(
                    method, server.url + path, **cast('dict[str, Any]', kwargs)
                ) as response:
                    seen.append((response.status, await response.text(), dict(response.headers)))
    assert [status for status, _, _ in seen] == [401, 401, 400, 400, 400, 422, 404, 200, 200, 404]
    for _status, text, headers in seen:
        assert token not in text and token not in str(headers)
    mentions = [
        record.getMessage()
        for record in caplog.records
        if token in record.getMessage() or token in (record.exc_text or '')
    ]
    assert mentions == [f'open {server.url}/page?token={token} in a browser to connect a page']


# -- origins -----------------------------------------------------------------------------------


async def preflight(server: jchannel_http.Server, origin: str) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as bare:
        async with bare.options(
            f'{server.url}/messages',
            headers={
                'Origin': origin,
                'Access-Control-Request-Method': 'POST',
                'Access-Control-Request-Headers': 'authorization, content-type',
            },
        ) as response:
            await response.read()
            return response


async def test_any_origin_by_default_but_never_with_credentials(server, http) -> None:
    for origin in ('http://localhost:8888', 'https://colab.research.example', 'null'):
        response = await preflight(server, origin)
        assert response.status == 204
        assert response.headers['Access-Control-Allow-Origin'] == origin
        assert response.headers['Access-Control-Allow-Methods'] == 'GET, POST, OPTIONS'
        assert {'Authorization', 'Content-Type', 'Last-Event-ID'} <= {
            name.strip() for name in response.headers['Access-Control-Allow-Headers'].split(',')
        }
        assert 'Access-Control-Allow-Credentials' not in response.headers
        async with http.get(f'{server.url}/status', headers={'Origin': origin}) as answer:
            assert answer.status == 200
            assert answer.headers['Access-Control-Allow-Origin'] == origin
            assert answer.headers['Vary'] == 'Origin'
            assert 'Access-Control-Allow-Credentials' not in answer.headers
        async with aiohttp.ClientSession() as bare:  # the token is still needed
            async with bare.get(f'{server.url}/status', headers={'Origin': origin}) as answer:
                assert answer.status == 401


async def test_allow_origins_refuses_other_origins_before_anything_runs(http) -> None:
    async with jchannel_http.Server(token=TOKEN, allow_origins=['http://ok.test']) as server:
        channel = jchannel_http.Channel(server, 'c', name='math')
        channel.handler = Handler()
        # the preflight passes, so that the page reads the refusal of its request and says why
        evil = await preflight(server, 'http://evil.test')
        assert evil.status == 204
        assert evil.headers['Access-Control-Allow-Origin'] == 'http://evil.test'
        assert (await preflight(server, 'http://ok.test')).status == 204
        call = f'{server.url}/channels/math/call/multiply'
        async with http.post(call, data=b'[2, 3]', headers={'Origin': 'http://evil.test'}) as r:
            check_json_error(
                r.status,
                {k.lower(): v for k, v in r.headers.items()},
                await r.read(),
                403,
                'forbidden_origin',
                'not in allow_origins',
            )
            assert (await r.json())['message'].endswith(
                "start it with allow_origins=['http://ok.test', 'http://evil.test']"
            )
            # the refusal, which holds no data, is readable by the refused origin
            assert r.headers['Access-Control-Allow-Origin'] == 'http://evil.test'
        async with aiohttp.ClientSession() as bare:  # refused before the token is looked at
            async with bare.get(
                f'{server.url}/status', headers={'Origin': 'http://evil.test'}
            ) as answer:
                assert answer.status == 403
                assert (await answer.json())['error'] == 'forbidden_origin'
        assert channel.handler.calls == []
        for origin in ('http://ok.test', server.url, None):  # listed, its own /page, and curl
            headers = {'Origin': origin} if origin else {}
            async with http.post(call, data=b'[2, 3]', headers=headers) as response:
                assert await response.json() == {'result': 6}
                assert response.headers.get('Access-Control-Allow-Origin') == origin
        assert len(channel.handler.calls) == 3
        async with aiohttp.ClientSession() as bare:  # public files are for everyone
            async with bare.get(
                f'{server.url}/client.js', headers={'Origin': 'http://evil.test'}
            ) as response:
                assert response.status == 200


def test_allow_origins_must_be_origins() -> None:
    with pytest.raises(TypeError, match='a list of origins'):
        jchannel_http.Server(allow_origins='http://localhost:8888')
    with pytest.raises(ValueError, match='no path or trailing slash'):
        jchannel_http.Server(allow_origins=['http://localhost:8888/'])
    server = jchannel_http.Server(allow_origins=['HTTP://LocalHost:8888'])
    assert server.options.allow_origins == ('http://localhost:8888',)


# -- requests in flight ------------------------------------------------------------------------


class Blocking:
    """A handler whose calls wait until released."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.entered = 0
        self.all_in = asyncio.Event()
        self.release = asyncio.Event()

    async def hold(self, value):
        self.entered += 1
        if self.entered == self.expected:
            self.all_in.set()
        await self.release.wait()
        return value


async def test_more_requests_in_flight_than_max_requests_get_429(http) -> None:
    async with jchannel_http.Server(token=TOKEN, max_requests=2) as server:
        channel = jchannel_http.Channel(server, 'c', name='slow')
        channel.handler = Blocking(expected=2)
        url = f'{server.url}/channels/slow/call/hold'
        held = [asyncio.ensure_future(http.post(url, data=f'[{i}]')) for i in range(2)]
        await asyncio.wait_for(channel.handler.all_in.wait(), 10)
        answer = await request(server, 'GET', '/status', {})
        check_json_error(*answer, 429, 'too_many_requests', 'max_requests')
        assert answer[1]['retry-after'] == '1'
        # requests without the token, and public files, take no slot
        check_json_error(
            *await request(server, 'GET', '/status', {'token': None}),
            401,
            'unauthorized',
            'a valid token',
        )
        assert (await request(server, 'GET', '/client.js', {'token': None}))[0] == 200
        channel.handler.release.set()
        responses = await asyncio.gather(*held)
        assert [await response.json() for response in responses] == [{'result': 0}, {'result': 1}]
        assert (await request(server, 'GET', '/status', {}))[0] == 200
        assert server._runner is not None
        assert server._runner.app[IN_FLIGHT].count == 0


async def test_an_event_stream_holds_a_request_slot(http) -> None:
    async with jchannel_http.Server(token=TOKEN, max_requests=1, heartbeat=1) as server:
        page = await FakePage(http, server, CLIENT).connect()
        try:
            check_json_error(
                *await request(server, 'GET', '/status', {}),
                429,
                'too_many_requests',
                'retry later',
            )
        finally:
            page.close()
        assert server._runner is not None
        in_flight = server._runner.app[IN_FLIGHT]
        for _ in range(100):  # the server notices the closed stream within moments
            if in_flight.count == 0:
                break
            await asyncio.sleep(0.05)
        assert in_flight.count == 0
        assert (await request(server, 'GET', '/status', {}))[0] == 200


def test_max_requests_must_be_positive() -> None:
    with pytest.raises(ValueError, match='max_requests must be a positive integer'):
        jchannel_http.Server(max_requests=0)
