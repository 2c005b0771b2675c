"""The endpoints of a real server, driven over real HTTP, with the bytes on the wire checked."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

import jchannel_http
from jchannel_http import FrontendError, StateError
from support.fake_page import EventReader, open_events, open_page, post
from support.kernel_server import TOKEN

CLIENT = 'test-client-1'


async def open_stream(http, server, client=CLIENT, **query) -> tuple:
    return await open_events(http, server, client, **query)


async def test_event_stream_headers_and_exact_first_bytes(server, http) -> None:
    response, reader = await open_stream(http, server)
    try:
        assert response.status == 200
        assert response.headers['Content-Type'] == 'text/event-stream'
        assert response.headers['Cache-Control'] == 'no-cache, no-transform'
        assert response.headers['X-Accel-Buffering'] == 'no'
        assert 'Content-Encoding' not in response.headers
        session = server.link.session.id
        hello = await reader.block()
        assert hello == (
            b'event: hello\nid: 0\ndata: {"session":"%b","cursor":0,"ack":0,'
            b'"heartbeat":1,"max_body":1048576,"max_url":8000}\n\n' % session.encode()
        )
        padding = await reader.block()
        assert padding == b':' + b' ' * 2048 + b'\n\n'
        assert await reader.block(timeout=3) == b': ping\n\n'  # heartbeat is 1 s here
    finally:
        response.close()


async def test_a_kernel_call_arrives_as_an_event_and_its_result_comes_back(server, http) -> None:
    channel = jchannel_http.Channel(server, '(channel) => 7')
    opening = channel.open()
    response, reader = await open_stream(http, server)
    try:
        hello = await reader.event()
        session = hello['data']['session']
        opened = await reader.event()
        assert opened['id'] == '1'
        assert opened['data'] == {
            'seq': 1,
            'type': 'open',
            'call': 1,
            'channel': channel.key,
            'code': '(channel) => 7',
        }
        status, body = await post(
            http,
            server,
            {
                'client': CLIENT,
                'session': session,
                'ack': 1,
                'messages': [{'seq': 1, 'type': 'result', 'call': 1, 'value': 7}],
            },
        )
        assert (status, body) == (200, {'ack': 1})
        assert await opening == 7
        assert server.status()['outbox'] == {'messages': 0, 'bytes': 0}

        calling = channel.call('add', 2, 3)
        event = await reader.event()
        assert event['data'] == {
            'seq': 2,
            'type': 'call',
            'call': 2,
            'channel': channel.key,
            'name': 'add',
            'args': [2, 3],
        }
        await post(
            http,
            server,
            {
                'client': CLIENT,
                'session': session,
                'ack': 2,
                'messages': [
                    {'seq': 2, 'type': 'error', 'call': 2, 'name': 'TypeError', 'message': 'no add'}
                ],
            },
        )
        with pytest.raises(FrontendError) as caught:
            await calling
        assert (caught.value.type, caught.value.detail) == ('TypeError', 'no add')
        assert str(caught.value) == 'TypeError: no add'
    finally:
        response.close()


class Handler:
    def multiply(self, a, b):
        return a * b

    async def divide(self, a, b):
        await asyncio.sleep(0)
        return a / b


async def connect(http, server) -> tuple:
    """A stream whose hello was read; returns (response, reader, session id)."""
    return await open_page(http, server, CLIENT)


async def test_page_calls_reach_the_handler_once_even_when_posted_twice(server, http) -> None:
    channel = jchannel_http.Channel(server, 'c', name='math')
    handler = Handler()
    channel.handler = handler
    calls = []

    def multiply(a, b):
        calls.append((a, b))
        return a * b

    handler.multiply = multiply  # type: ignore[method-assign]  # this one records its calls
    response, reader, session = await connect(http, server)
    try:
        batch = {
            'client': CLIENT,
            'session': session,
            'ack': 0,
            'messages': [
                {
                    'seq': 1,
                    'type': 'call',
                    'call': 1,
                    'channel': channel.key,
                    'name': 'multiply',
                    'args': [6, 7],
                },
                {
                    'seq': 2,
                    'type': 'call',
                    'call': 2,
                    'channel': channel.key,
                    'name': 'divide',
                    'args': [1, 0],
                },
                {'seq': 3, 'type': 'echo', 'call': 3, 'channel': channel.key, 'args': ['é', None]},
                {
                    'seq': 4,
                    'type': 'call',
                    'call': 4,
                    'channel': channel.key,
                    'name': 'missing',
                    'args': [],
                },
            ],
        }
        assert await post(http, server, batch) == (200, {'ack': 4})
        assert await post(http, server, batch) == (200, {'ack': 4})  # a retried POST
        replies = {}
        for _ in range(4):
            event = await reader.event()
            replies[event['data']['call']] = event['data']
        assert calls == [(6, 7)]
        assert replies[1] == {'seq': replies[1]['seq'], 'type': 'result', 'call': 1, 'value': 42}
        assert replies[2]['type'] == 'error' and replies[2]['name'] == 'ZeroDivisionError'
        assert replies[2]['message'] == 'division by zero'
        assert replies[3]['value'] == ['é', None]
        assert replies[4]['name'] == 'AttributeError'  # as in jupyter-jchannel
        assert "handler has no method 'missing'" in replies[4]['message']
    finally:
        response.close()


async def test_a_refused_frame_fails_only_its_own_call_and_the_batch_goes_on(
    server, http, caplog
) -> None:
    channel = jchannel_http.Channel(server, 'c')
    channel.handler = Handler()
    channel._open = True  # pretend it was opened in this session
    channel._opened_in = server.link.session.id
    kernel_call = channel.call('f', timeout=10)
    response, reader, session = await connect(http, server)
    try:
        assert (await reader.event())['data']['call'] == 1
        key = channel.key
        batch = {
            'client': CLIENT,
            'session': session,
            'ack': 1,
            'messages': [
                {
                    'seq': 1,
                    'type': 'call',
                    'call': 1,
                    'channel': key,
                    'name': 'multiply',
                    'args': [2, 3],
                },
                {
                    'seq': 2,
                    'type': 'call',
                    'call': 2,
                    'channel': key,
                    'name': 'multiply',
                    'args': 'x',
                },
                {'seq': 3, 'type': 'open', 'call': 3, 'channel': key, 'code': ''},
                {'seq': 4, 'type': 'result', 'call': 1},  # the answer to the kernel's call, broken
                {'seq': 5, 'type': 'mystery'},
                {
                    'seq': 6,
                    'type': 'echo',
                    'call': 6,
                    'channel': key,
                    'args': ['\ud83d', '\ude00!'],
                },
            ],
        }
        assert await post(http, server, batch) == (200, {'ack': 6})
        replies = {}
        for _ in range(4):
            event = await reader.event()
            replies[event['data']['call']] = event['data']
        assert replies[1]['value'] == 6
        assert replies[2]['name'] == 'ProtocolError' and "'args'" in replies[2]['message']
        assert replies[3]['name'] == 'ProtocolError' and 'open' in replies[3]['message']
        assert replies[6]['value'] == ['\ud83d', '\ude00!']  # lone surrogates, unchanged
        with pytest.raises(jchannel_http.ProtocolError, match="needs the field 'value'"):
            await kernel_call
        assert 'mystery' in caplog.text
        assert await post(http, server, {'client': CLIENT, 'session': session, 'ack': 5}) == (
            200,
            {'ack': 6},
        )  # and the session goes on
    finally:
        response.close()


async def test_a_batch_with_a_lone_surrogate_in_raw_json_reaches_the_handler(server, http) -> None:
    channel = jchannel_http.Channel(server, 'c')
    received = []
    channel.handler = type('H', (), {'take': lambda self, text: received.append(text) or text})()  # type: ignore[func-returns-value]  # records, then answers
    response, reader, session = await connect(http, server)
    try:
        body = (
            '{"client":"%s","session":"%s","ack":0,"messages":[{"seq":1,"type":"call",'  # noqa: UP031 (JSON braces would all need doubling in an f-string)
            '"call":1,"channel":%d,"name":"take","args":["cut \\ud83d"]}]}'
            % (CLIENT, session, channel.key)
        ).encode()
        async with http.post(f'{server.url}/messages', data=body) as answer:
            assert answer.status == 200
        event = await reader.event()
        assert received == ['cut \ud83d'] and event['data']['value'] == 'cut \ud83d'
    finally:
        response.close()


async def test_reconnect_replays_what_was_not_acknowledged(server, http) -> None:
    channel = jchannel_http.Channel(server, 'c')
    channel._open = True  # pretend it was opened in this session
    channel._opened_in = server.link.session.id
    tasks = [channel.call('f', i, timeout=10) for i in range(3)]
    response, reader, session = await connect(http, server)
    first = [await reader.event() for _ in range(3)]
    assert [e['id'] for e in first] == ['1', '2', '3']
    response.close()  # the stream is cut after the page processed only frame 1
    response, reader = await open_stream(http, server, session=session, cursor=1)
    try:
        hello = await reader.event()
        assert hello['id'] == '1'
        again = [await reader.event() for _ in range(2)]
        assert [e['id'] for e in again] == ['2', '3']
        assert server.link.session.outbox.acked == 1
        await post(
            http,
            server,
            {
                'client': CLIENT,
                'session': session,
                'ack': 3,
                'messages': [
                    {'seq': i + 1, 'type': 'result', 'call': i + 1, 'value': i * 10}
                    for i in range(3)
                ],
            },
        )
        assert await asyncio.gather(*tasks) == [0, 10, 20]
    finally:
        response.close()


async def test_last_event_id_header_wins_over_cursor(server, http) -> None:
    channel = jchannel_http.Channel(server, 'c')
    opening = channel.open(timeout=10)
    response, reader, session = await connect(http, server)
    await reader.event()
    response.close()
    response = await http.get(
        f'{server.url}/events',
        params={'client': CLIENT, 'session': session, 'cursor': '0'},
        headers={'Last-Event-ID': '1'},
    )
    reader = EventReader(response)
    try:
        assert (await reader.event())['id'] == '1'
        assert server.link.session.outbox.acked == 1
    finally:
        response.close()
        opening.cancel()


async def test_an_old_cursor_from_the_sessions_own_page_is_a_replay_not_a_loss(
    server, http
) -> None:
    """A browser sends a request again, old cursor and all, when its connection was cut (a held
    poll behind a buffering proxy), after the page acknowledged newer frames in a POST."""
    channel = jchannel_http.Channel(server, 'c')
    opening = channel.open(timeout=10)
    calling = None
    response, reader, session = await connect(http, server)
    try:
        await reader.event()  # the open frame, seq 1
        await post(
            http,
            server,
            {
                'client': CLIENT,
                'session': session,
                'ack': 1,
                'messages': [{'seq': 1, 'type': 'result', 'call': 1, 'value': None}],
            },
        )
        await opening
        calling = channel.call('later', timeout=10)  # seq 2, not yet acknowledged
        assert (await reader.event())['id'] == '2'
    finally:
        response.close()
    response, reader = await open_stream(http, server, session=session, cursor=0)
    try:
        assert response.status == 200
        hello = await reader.event()
        assert hello['data']['session'] == session
        assert (await reader.event())['id'] == '2'  # what the page has not acknowledged, again
        await post(
            http,
            server,
            {
                'client': CLIENT,
                'session': session,
                'ack': 2,
                'messages': [{'seq': 2, 'type': 'result', 'call': 2, 'value': 'done'}],
            },
        )
        assert await calling == 'done'
        assert server.link.session.id == session
    finally:
        response.close()


async def test_resync_when_the_cursor_cannot_be_served(server, http) -> None:
    channel = jchannel_http.Channel(server, 'c')
    opening = channel.open(timeout=10)
    response, reader, session = await connect(http, server)
    await reader.event()
    response.close()
    response, _ = await open_stream(http, server, session=session, cursor=5)  # never sent
    assert response.status == 410
    assert (await response.json())['error'] == 'resync'
    with pytest.raises(StateError, match='resync'):
        await opening
    response, _ = await open_stream(http, server, session=session)
    assert response.status == 410  # that session is over for good
    response, reader = await open_stream(http, server)  # a fresh start works
    assert response.status == 200
    assert (await reader.event())['data']['session'] != session
    response.close()


async def test_an_old_cursor_from_another_page_still_resyncs(server, http) -> None:
    channel = jchannel_http.Channel(server, 'c')
    opening = channel.open(timeout=10)
    response, reader, session = await connect(http, server)
    await reader.event()
    await post(http, server, {'client': CLIENT, 'session': session, 'ack': 1, 'messages': []})
    response.close()
    async with http.post(f'{server.url}/release', params={'client': CLIENT}):
        pass
    response, _ = await open_stream(http, server, client='other-client', session=session, cursor=0)
    assert response.status == 410
    with pytest.raises(StateError):
        await opening
    response.close()


async def test_a_post_for_another_session_is_refused(server, http) -> None:
    response, _reader, _session = await connect(http, server)
    try:
        status, body = await post(
            http, server, {'client': CLIENT, 'session': 'old-session', 'ack': 0, 'messages': []}
        )
        assert status == 410 and body['error'] == 'resync'
    finally:
        response.close()


async def test_second_client_gets_409_until_the_first_releases(server, http) -> None:
    response, reader, session = await connect(http, server)
    other, _ = await open_stream(http, server, client='other-client')
    assert other.status == 409
    body = await other.json()
    assert body['error'] == 'client_conflict' and 'another page' in body['message']
    response.close()
    async with http.post(f'{server.url}/release', params={'client': CLIENT}) as released:
        assert await released.json() == {'released': True}
    other, reader = await open_stream(http, server, client='other-client')
    assert other.status == 200
    assert (await reader.event())['data']['session'] != session
    other.close()


async def test_takeover_fails_calls_waiting_for_the_old_page(server, http) -> None:
    channel = jchannel_http.Channel(server, 'c')
    opening = channel.open(timeout=10)
    response, reader, _session = await connect(http, server)
    await reader.event()
    response.close()
    await http.post(f'{server.url}/release', params={'client': CLIENT})
    other, _ = await open_stream(http, server, client='other-client')
    with pytest.raises(StateError, match='another page took over'):
        await opening
    other.close()


@pytest.mark.parametrize(
    'headers, query',
    [
        ({}, {}),
        ({'Authorization': 'Bearer wrong'}, {}),
        ({}, {'token': 'wrong'}),
    ],
)
async def test_token_is_required(server, headers, query) -> None:
    async with aiohttp.ClientSession() as bare:
        for method, path in [
            ('GET', '/status'),
            ('GET', '/events'),
            ('POST', '/messages'),
            ('POST', '/channels/x/call/y'),
            ('POST', '/release'),
        ]:
            async with bare.request(
                method, server.url + path, headers=headers, params=query
            ) as response:
                assert response.status == 401, path
                assert (await response.json())['error'] == 'unauthorized'
                assert TOKEN not in await response.text()


async def test_token_in_query_is_accepted(server) -> None:
    async with aiohttp.ClientSession() as bare:
        async with bare.get(f'{server.url}/status', params={'token': TOKEN}) as response:
            assert response.status == 200


async def test_public_endpoints_need_no_token(server) -> None:
    async with aiohttp.ClientSession() as bare:
        async with bare.get(f'{server.url}/client.js') as response:
            assert response.status == 200
            assert response.content_type == 'text/javascript'
            text = await response.text()
            assert 'globalThis.jchannel' in text and '\nimport ' not in text
        async with bare.get(f'{server.url}/openapi.json') as response:
            spec = await response.json()
            assert spec['openapi'].startswith('3.')
            assert set(spec['paths']) >= {
                '/events',
                '/messages',
                '/status',
                '/release',
                '/channels/{channel}/call/{method}',
            }


async def test_cors_preflight_and_origin_echo(server, http) -> None:
    async with aiohttp.ClientSession() as bare:
        async with bare.options(
            f'{server.url}/messages',
            headers={
                'Origin': 'http://localhost:8888',
                'Access-Control-Request-Method': 'POST',
                'Access-Control-Request-Headers': 'authorization, content-type',
            },
        ) as response:
            assert response.status == 204
            assert response.headers['Access-Control-Allow-Origin'] == 'http://localhost:8888'
            assert 'Authorization' in response.headers['Access-Control-Allow-Headers']
            assert 'Access-Control-Allow-Credentials' not in response.headers
    async with http.get(f'{server.url}/status', headers={'Origin': 'http://x.test'}) as response:
        assert response.headers['Access-Control-Allow-Origin'] == 'http://x.test'


async def test_allow_origins_restricts(http) -> None:
    async with jchannel_http.Server(token=TOKEN, allow_origins=['http://ok.test']) as server:
        async with aiohttp.ClientSession() as bare:
            async with bare.options(
                f'{server.url}/status', headers={'Origin': 'http://evil.test'}
            ) as response:
                assert response.status == 204  # the request that follows is refused
        async with http.get(
            f'{server.url}/status', headers={'Origin': 'http://evil.test'}
        ) as response:
            assert response.status == 403
            assert (await response.json())['error'] == 'forbidden_origin'
            assert 'connected' not in await response.text()


async def test_direct_call_from_curl(server, http) -> None:
    channel = jchannel_http.Channel(server, 'c', name='math')
    channel.handler = Handler()
    url = f'{server.url}/channels/math/call'
    async with http.post(f'{url}/multiply', data='[6, 7]') as response:
        assert response.status == 200 and await response.read() == b'{"result":42}'
    async with http.post(
        f'{server.url}/channels/{channel.key}/call/multiply', data='[2, 3]'
    ) as response:
        assert await response.json() == {'result': 6}
    async with http.post(f'{url}/divide', data='[1, 0]') as response:
        assert response.status == 422
        assert await response.json() == {
            'error': 'handler_error',
            'name': 'ZeroDivisionError',
            'message': 'division by zero',
        }
    async with http.post(f'{url}/nope', data='[]') as response:
        assert response.status == 404 and 'nope' in (await response.json())['message']
    async with http.post(f'{server.url}/channels/none/call/x', data='[]') as response:
        assert response.status == 404
    async with http.post(f'{url}/multiply', data='{"a": 1}') as response:
        assert response.status == 400


@pytest.mark.parametrize(
    'body, status, fragment',
    [
        (b'not json', 400, 'not valid JSON'),
        (b'[]', 400, 'JSON object'),
        (b'{"client": "bad"}', 400, 'client must be'),
        (
            b'{"client": "test-client-1", "session": "s", "ack": 0, "extra": 1}',
            400,
            'unknown field',
        ),
        (
            b'{"client": "test-client-1", "session": "s", "messages": [{"type": "echo"}]}',
            400,
            "'seq' must be",
        ),
    ],
)
async def test_bad_posts_get_a_json_error(server, http, body, status, fragment) -> None:
    async with http.post(f'{server.url}/messages', data=body) as response:
        assert response.status == status
        assert fragment in (await response.json())['message']


async def test_body_over_the_limit_is_413(http) -> None:
    async with jchannel_http.Server(token=TOKEN, max_body=1000) as server:
        async with http.post(f'{server.url}/messages', data=b'x' * 2000) as response:
            assert response.status == 413
            assert (await response.json())['error'] == 'too_large'


async def test_status_reports_the_session(server, http) -> None:
    async with http.get(f'{server.url}/status') as response:
        status = await response.json()
    assert status['connected'] is False and status['transport'] is None
    response, _reader, session = await connect(http, server)
    try:
        async with http.get(f'{server.url}/status') as reply:
            status = await reply.json()
        assert status['connected'] is True and status['transport'] == 'sse-get'
        assert status['session'] == session and status['client'] == CLIENT
        assert status['outbox'] == {'messages': 0, 'bytes': 0}
        assert status['uptime'] >= 0
    finally:
        response.close()


async def test_call_without_a_page_fails_with_state_error(server) -> None:
    with pytest.raises(StateError, match='no page is connected'):
        await server.open('(channel) => 1', timeout=0.2)


async def test_stop_fails_waiting_calls_and_frees_the_port(http) -> None:
    server = jchannel_http.Server(token=TOKEN)
    await server.start()
    opening = jchannel_http.Channel(server, 'c').open(timeout=10)
    await asyncio.sleep(0.05)
    response, _reader, _ = await connect(http, server)
    await server.stop()
    with pytest.raises(StateError, match='stopped'):
        await opening
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f'{server.url}/status'):
            pass
    response.close()


def test_unknown_tunnel_values_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match=r"unknown tunnel 'cloudflare'.*'cloudflared'"):
        jchannel_http.Server(tunnel='cloudflare')  # every tunnel value: test_tunnels.py


def test_unknown_options_are_named() -> None:
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['hartbeat'\]"):
        jchannel_http.Server(hartbeat=3)
