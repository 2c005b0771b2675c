"""The three kernel -> page transports over real HTTP: POST event streams, long-poll, the
stream's maximum age, path prefixes and the options that bound them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

import jchannel_http
from support.fake_page import EventReader, post
from support.kernel_server import TOKEN
from support.ports import free_port
from support.waiting import wait_until

CLIENT = 'transport-client-1'


@contextlib.asynccontextmanager
async def serving(**options) -> AsyncIterator[jchannel_http.Server]:
    """A running server whose pretend page (CLIENT) leaves before it stops, so that stop()
    does not wait for a page to go."""
    async with jchannel_http.Server(token=TOKEN, **options) as server:
        yield server
        server.gate.release(CLIENT)


@pytest.fixture
async def server() -> AsyncIterator[jchannel_http.Server]:
    async with serving(heartbeat=1) as server:
        yield server


async def poll(
    http: aiohttp.ClientSession, server: jchannel_http.Server, timeout: float = 10, **query
) -> tuple[int, dict]:
    params = {'client': CLIENT, **{key: str(value) for key, value in query.items()}}
    async with http.get(
        f'{server.url}/poll', params=params, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as response:
        return response.status, await response.json()


def opened_channel(server: jchannel_http.Server) -> jchannel_http.Channel:
    channel = jchannel_http.Channel(server, 'c')
    channel._open = True  # pretend the page ran its code in this session
    channel._opened_in = server.link.session.id
    return channel


async def queued(server: jchannel_http.Server, count: int) -> None:
    """Wait until ``count`` frames are in the kernel's outbox."""
    await wait_until(
        lambda: len(server.link.session.outbox) >= count,
        2,
        f'{count} frames in the outbox',
        interval=0.01,
    )


async def held(server: jchannel_http.Server, http, **query) -> asyncio.Future:
    """A poll, once the server holds it."""
    task = asyncio.ensure_future(poll(http, server, **query))
    for _ in range(100):
        if server.gate.streams:
            break
        await asyncio.sleep(0.01)
    assert server.gate.streams == 1 and not task.done()
    return task


async def test_a_post_event_stream_is_the_same_stream(server, http) -> None:
    async with http.post(
        f'{server.url}/events', params={'client': CLIENT}, headers={'Accept': 'text/event-stream'}
    ) as response:
        assert response.status == 200
        assert response.headers['Content-Type'] == 'text/event-stream'
        assert response.headers['X-Accel-Buffering'] == 'no'
        reader = EventReader(response)
        hello = await reader.block()
        session = server.link.session.id
        assert hello == (
            b'event: hello\nid: 0\ndata: {"session":"%b","cursor":0,"ack":0,'
            b'"heartbeat":1,"max_body":1048576,"max_url":8000}\n\n' % session.encode()
        )
        assert await reader.block() == b':' + b' ' * 2048 + b'\n\n'
        assert server.status()['transport'] == 'sse-post'
        calling = opened_channel(server).call('f', 1, timeout=10)
        event = await reader.event()
        assert event['data']['name'] == 'f' and event['id'] == '1'
        await post(
            http,
            server,
            {
                'client': CLIENT,
                'session': session,
                'ack': 1,
                'messages': [
                    {'seq': 1, 'type': 'result', 'call': event['data']['call'], 'value': 'done'}
                ],
            },
        )
        assert await calling == 'done'


async def test_the_first_poll_is_answered_at_once_with_the_hello_fields(server, http) -> None:
    status, answer = await poll(http, server)
    assert status == 200
    assert answer == {
        'session': server.link.session.id,
        'cursor': 0,
        'ack': 0,
        'heartbeat': 1,
        'max_body': 1048576,
        'max_url': 8000,
        'hold': 25,
        'frames': [],
    }
    assert server.status()['transport'] == 'poll'
    assert server.status()['connected'] is True


async def test_a_poll_is_held_until_a_frame_is_sent_then_answers_with_it(server, http) -> None:
    _, hello = await poll(http, server)
    session = hello['session']
    channel = opened_channel(server)
    waiting = await held(server, http, session=session)
    calling = channel.call('f', 'x', timeout=10)
    status, answer = await waiting
    assert status == 200
    assert answer['frames'] == [
        {'seq': 1, 'type': 'call', 'call': 1, 'channel': channel.key, 'name': 'f', 'args': ['x']}
    ]
    await post(
        http,
        server,
        {
            'client': CLIENT,
            'session': session,
            'ack': 1,
            'messages': [{'seq': 1, 'type': 'result', 'call': 1, 'value': 'y'}],
        },
    )
    assert await calling == 'y'


async def test_a_poll_returns_every_waiting_frame_and_its_cursor_acknowledges(server, http) -> None:
    _, hello = await poll(http, server)
    session = hello['session']
    channel = opened_channel(server)
    calls = [channel.call('f', i, timeout=10) for i in range(50)]
    await queued(server, 50)
    _, answer = await poll(http, server, session=session, cursor=0)
    assert [frame['args'] for frame in answer['frames']] == [[i] for i in range(50)]
    _, again = await poll(http, server, session=session, cursor=20, hold=0)
    assert [frame['seq'] for frame in again['frames']] == list(range(21, 51))
    assert server.status()['acked'] == 20 and server.status()['outbox']['messages'] == 30
    _, last = await poll(http, server, session=session, cursor=50, hold=0)
    assert last['frames'] == [] and server.status()['outbox']['messages'] == 0
    for task in calls:
        task.cancel()


async def test_a_carrying_post_answers_with_the_frames_after_its_ack(server, http) -> None:
    _, hello = await poll(http, server)
    session = hello['session']
    channel = opened_channel(server)
    calls = [channel.call('f', i, timeout=10) for i in range(3)]
    await queued(server, 3)
    body = {'client': CLIENT, 'session': session, 'ack': 1, 'messages': [], 'carry': True}
    async with http.post(f'{server.url}/messages', data=orjson.dumps(body)) as response:
        assert response.status == 200
        assert response.headers['Cache-Control'] == 'no-store, no-transform'
        raw = await response.read()
    key = channel.key
    assert raw == (
        b'{"ack":0,"frames":['
        b'{"seq":2,"type":"call","call":2,"channel":%d,"name":"f","args":[1]},'
        b'{"seq":3,"type":"call","call":3,"channel":%d,"name":"f","args":[2]}]}' % (key, key)
    )
    # An answer that was lost: the same ack again brings the same frames again.
    _, again = await post(http, server, body)
    assert [frame['seq'] for frame in again['frames']] == [2, 3]
    assert server.status()['acked'] == 1
    for task in calls:
        task.cancel()


async def test_a_carrying_post_waits_at_most_poll_linger_for_a_frame(http) -> None:
    async with serving(poll_linger=2) as server:
        _, hello = await poll(http, server)
        channel = opened_channel(server)
        body = {'client': CLIENT, 'session': hello['session'], 'ack': 0, 'carry': True}
        loop = asyncio.get_running_loop()
        started = loop.time()
        posting = asyncio.ensure_future(post(http, server, body))
        await asyncio.sleep(0.2)
        assert not posting.done()
        calling = channel.call('f', 'late', timeout=10)
        status, answer = await posting
        assert status == 200 and [frame['args'] for frame in answer['frames']] == [['late']]
        assert loop.time() - started < 1.5
        # Nothing comes: the answer has no frames, after the linger.
        started = loop.time()
        _, empty = await post(http, server, {**body, 'ack': 1})
        assert empty == {'ack': 0, 'frames': []} and 1.9 < loop.time() - started < 4
        calling.cancel()


async def test_a_held_poll_leaves_out_what_a_post_carried(server, http) -> None:
    _, hello = await poll(http, server)
    session = hello['session']
    channel = opened_channel(server)
    first = channel.call('f', 'first', timeout=10)
    await queued(server, 1)
    body = {'client': CLIENT, 'session': session, 'ack': 0, 'carry': True}
    _, carried = await post(http, server, body)
    assert [frame['args'] for frame in carried['frames']] == [['first']]
    # The poll comes with a cursor from before that answer: it waits for what comes next.
    waiting = await held(server, http, session=session, cursor=0)
    await asyncio.sleep(0.1)
    assert not waiting.done(), 'the poll answered with a frame the POST carried'
    second = channel.call('f', 'second', timeout=10)
    _, answer = await waiting
    assert [frame['args'] for frame in answer['frames']] == [['second']]
    for task in (first, second):
        task.cancel()


async def test_a_post_waiting_with_a_held_poll_takes_the_next_frame_alone(http) -> None:
    async with serving(poll_linger=5) as server:
        _, hello = await poll(http, server)
        session = hello['session']
        channel = opened_channel(server)
        waiting = await held(server, http, session=session, cursor=0)
        body = {'client': CLIENT, 'session': session, 'ack': 0, 'carry': True}
        posting = asyncio.ensure_future(post(http, server, body))
        await asyncio.sleep(0.2)
        calling = channel.call('f', 'once', timeout=10)
        _, carried = await posting
        assert [frame['args'] for frame in carried['frames']] == [['once']]
        await asyncio.sleep(0.1)
        assert not waiting.done(), 'the frame went out twice'
        waiting.cancel()
        calling.cancel()


@pytest.mark.parametrize('carry', [1, 'yes', None])
async def test_carry_must_be_a_boolean(server, http, carry) -> None:
    _, hello = await poll(http, server)
    status, answer = await post(
        http, server, {'client': CLIENT, 'session': hello['session'], 'carry': carry}
    )
    assert status == 400 and answer['message'] == "field 'carry' must be true or false"


async def test_a_poll_answer_holds_at_most_poll_bytes_of_frames_but_at_least_one(http) -> None:
    async with serving(poll_bytes=1200) as server:
        _, hello = await poll(http, server)
        session = hello['session']
        channel = opened_channel(server)
        calls = [channel.call('f', 'x' * size, timeout=10) for size in (300, 300, 300, 5000, 10)]
        await queued(server, 5)
        sizes = [len(entry.data) for entry in server.link.session.outbox.entries()]
        _, answer = await poll(http, server, session=session)
        assert [frame['seq'] for frame in answer['frames']] == [1, 2, 3]
        assert sum(sizes[:3]) <= 1200 < sum(sizes[:4])
        _, answer = await poll(http, server, session=session, cursor=3)
        assert [frame['seq'] for frame in answer['frames']] == [4]  # alone over the limit
        _, answer = await poll(http, server, session=session, cursor=4)
        assert [frame['seq'] for frame in answer['frames']] == [5]
        for task in calls:
            task.cancel()


async def test_a_poll_asks_for_a_shorter_hold_but_never_a_longer_one(http) -> None:
    async with serving(poll_hold=0.5) as server:
        _, hello = await poll(http, server)
        status, answer = await poll(http, server, session=hello['session'], hold=3600)
        assert status == 200 and answer['frames'] == [] and answer['hold'] == 0.5
    async with serving(poll_hold=3600) as server:
        _, hello = await poll(http, server)
        status, answer = await poll(http, server, session=hello['session'], hold=0.2)
        assert status == 200 and answer['frames'] == []


@pytest.mark.parametrize('path', ['/events', '/poll'])
async def test_head_is_not_allowed_on_the_transports(server, http, path) -> None:
    async with http.head(f'{server.url}{path}', params={'client': CLIENT}) as response:
        assert response.status == 405
    assert server.gate.current is None  # nobody was admitted


@pytest.mark.parametrize('hold', ['-1', 'soon', 'nan', 'inf'])
async def test_a_bad_hold_is_refused(server, http, hold) -> None:
    async with http.get(f'{server.url}/poll', params={'client': CLIENT, 'hold': hold}) as response:
        assert response.status == 400
        assert 'hold must be a non-negative number of seconds' in (await response.json())['message']


async def test_a_newer_poll_ends_the_older_one(server, http) -> None:
    _, hello = await poll(http, server)
    older = asyncio.ensure_future(poll(http, server, session=hello['session']))
    for _ in range(100):
        if server.gate.streams:
            break
        await asyncio.sleep(0.01)
    newer = asyncio.ensure_future(poll(http, server, session=hello['session']))
    status, answer = await asyncio.wait_for(older, 10)
    assert status == 200 and answer['frames'] == []
    assert not newer.done()
    newer.cancel()


async def test_a_poll_held_across_a_takeover_gets_410(http) -> None:
    async with serving(heartbeat=0.2) as server:
        _, hello = await poll(http, server)
        held = asyncio.ensure_future(poll(http, server, session=hello['session'], hold=60))
        for _ in range(100):
            if server.gate.streams:
                break
            await asyncio.sleep(0.01)
        server.renew('a test replaced the session')
        status, answer = await asyncio.wait_for(held, 10)
        assert status == 410 and answer['error'] == 'resync'


async def test_a_stream_ends_at_its_maximum_age_with_a_retry_hint(http) -> None:
    async with serving(heartbeat=30, stream_max_age=0.3) as server:
        async with http.get(f'{server.url}/events', params={'client': CLIENT}) as response:
            body = await asyncio.wait_for(response.read(), 10)
        assert body.startswith(b'event: hello\n')
        assert body.endswith(b'\n\nretry: 0\n\n')
        assert server.status()['connected'] is True  # a stream ending is not a page leaving


async def test_the_routes_are_served_under_the_url_path_prefix_too(http) -> None:
    port = free_port()
    prefix = f'/user/me/proxy/absolute/{port}'
    url = f'http://127.0.0.1:{port}{prefix}/'
    async with serving(port=port, url=url) as server:
        assert server.url == url.rstrip('/')
        root = f'http://127.0.0.1:{port}'
        for base in (root, root + prefix):
            async with http.get(f'{base}/status') as response:
                assert response.status == 200 and 'uptime' in await response.json()
            async with aiohttp.ClientSession() as bare:
                async with bare.get(f'{base}/client.js') as response:
                    assert response.status == 200  # public under the prefix too
                async with bare.get(f'{base}/status') as response:
                    assert response.status == 401
        async with http.get(f'{root}{prefix}/poll', params={'client': CLIENT}) as response:
            assert (await response.json())['session'] == server.link.session.id
        async with http.get(f'{root}/elsewhere{prefix}/status') as response:
            assert response.status == 404


async def test_the_page_carries_the_servers_client_options(http) -> None:
    async with serving(
        transport='sse-post', first_event_deadline=7, upgrade_interval=60, remember_transport=30
    ) as server:
        assert server.client_options() == {
            'firstEventDeadline': 7,
            'upgradeInterval': 60,
            'rememberTransport': 30,
            'maxUrl': 8000,
            'transport': 'sse-post',
        }
        async with http.get(f'{server.url}/page') as response:
            html = await response.text()
        line = next(line for line in html.splitlines() if line.startswith('const OPTIONS = '))
        assert orjson.loads(line.removeprefix('const OPTIONS = ').rstrip(';')) == {
            'firstEventDeadline': 7,
            'upgradeInterval': 60,
            'rememberTransport': 30,
            'maxUrl': 8000,
            'transport': 'sse-post',
        }
    assert jchannel_http.Server().client_options()['rememberTransport'] == 600  # the page's default


@pytest.mark.parametrize(
    'options, message',
    [
        ({'transport': 'websocket'}, 'transport must be one of'),
        ({'poll_hold': 0}, 'poll_hold must be a positive number of seconds'),
        ({'poll_bytes': 0}, 'poll_bytes must be a positive integer'),
        ({'poll_linger': -0.1}, 'poll_linger must be a non-negative number of seconds'),
        ({'stream_max_age': -1}, 'stream_max_age must be a positive number of seconds'),
        ({'first_event_deadline': 0}, 'first_event_deadline must be a positive number of seconds'),
        ({'upgrade_interval': 0}, 'upgrade_interval must be a positive number of seconds'),
        ({'remember_transport': -1}, r'remember_transport must be a number of seconds >= 0'),
        (
            {'remember_transport': float('nan')},
            r'remember_transport must be a number of seconds >= 0',
        ),
    ],
)
def test_transport_options_are_checked(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        jchannel_http.Server(**options)


async def test_a_call_the_connected_page_does_not_answer_by_its_deadline_fails(
    server, http
) -> None:
    await poll(http, server)
    channel = opened_channel(server)
    with pytest.raises(TimeoutError, match=r"the page did not answer call 'f' by its deadline"):
        await channel.call('f', deadline=0.2)
    assert server.rpc.pending == 0
    assert server.status()['outbox']['messages'] == 1  # sent, never answered: kept for the page


async def test_timeout_bounds_the_wait_for_a_page_not_the_answer(server, http) -> None:
    _, hello = await poll(http, server)
    channel = opened_channel(server)
    call = channel.call('f', timeout=0.2)
    for _ in range(8):  # the page stays (it polls) and takes its time: the call waits
        _, answer = await poll(http, server, session=hello['session'], cursor=0, hold=0)
        await asyncio.sleep(0.1)
    assert not call.done()
    body = {
        'client': CLIENT,
        'session': hello['session'],
        'ack': 1,
        'messages': [
            {'seq': 1, 'type': 'result', 'call': answer['frames'][0]['call'], 'value': 'late'}
        ],
    }
    await post(http, server, body)
    assert await call == 'late'


async def test_a_call_waiting_for_room_in_a_full_outbox_times_out_unsent(http) -> None:
    async with serving(heartbeat=1, outbox_messages=2) as server:
        await poll(http, server)
        channel = opened_channel(server)
        waiting = [channel.call('f', i, timeout=10) for i in range(2)]
        await queued(server, 2)
        with pytest.raises(TimeoutError, match=r"did not take call 'f' within 0.2 s"):
            await channel.call('f', 'late', timeout=0.2)
        assert server.status()['outbox']['messages'] == 2 and server.rpc.pending == 2
        for task in waiting:
            task.cancel()


async def test_each_frame_has_one_way_and_that_way_delivers_it_again(server, http) -> None:
    _, hello = await poll(http, server)
    session = hello['session']
    channel = opened_channel(server)
    calls = [channel.call('f', 'by poll', timeout=10)]
    await queued(server, 1)
    _, lost = await poll(http, server, session=session, cursor=0, hold=0)
    assert [frame['seq'] for frame in lost['frames']] == [1]  # say this answer was lost
    calls.append(channel.call('f', 'by post', timeout=10))
    await queued(server, 2)
    body = {'client': CLIENT, 'session': session, 'ack': 0, 'carry': True}
    _, carried = await post(http, server, body)
    assert [frame['seq'] for frame in carried['frames']] == [2]  # frame 1 belongs to polls
    _, again = await poll(http, server, session=session, cursor=0, hold=0)
    assert [frame['seq'] for frame in again['frames']] == [1]  # frame 2 belongs to POSTs
    _, carried_again = await post(http, server, body)
    assert [frame['seq'] for frame in carried_again['frames']] == [2]
    await post(http, server, {**body, 'ack': 2})
    assert server.status()['outbox']['messages'] == 0 and server.link.carried == set()
    for task in calls:
        task.cancel()


async def test_a_stream_and_a_post_never_send_the_same_frame(http) -> None:
    async with (
        serving(poll_linger=2) as server,
        http.get(
            f'{server.url}/events',
            params={'client': CLIENT},
            headers={'Accept': 'text/event-stream'},
        ) as response,
    ):
        reader = EventReader(response)
        await reader.block()
        await reader.block()  # the padding
        body = {'client': CLIENT, 'session': server.link.session.id, 'ack': 0, 'carry': True}
        channel = opened_channel(server)
        streamed = channel.call('f', 'streamed', timeout=10)
        assert (await reader.block()).startswith(b'id: 1\ndata: {"seq":1,"type":"call"')
        posting = asyncio.ensure_future(post(http, server, body))
        await asyncio.sleep(0.2)  # the POST waits for a frame: not the one the stream sent
        assert not posting.done()
        carried = channel.call('f', 'carried', timeout=10)
        _, answer = await posting
        assert [frame['args'] for frame in answer['frames']] == [['carried']]
        with pytest.raises(asyncio.TimeoutError):  # the stream leaves it out
            await reader.block(timeout=0.5)
        streamed.cancel()
        carried.cancel()


async def test_a_poll_cursor_that_makes_room_wakes_the_senders_waiting_for_it(http) -> None:
    """A poll's cursor (as a stream's) acknowledges frames: the calls and replies waiting for
    room in a full outbox go on at once, as after the ack of a POST."""
    async with serving(heartbeat=1, outbox_messages=2) as server:
        _, hello = await poll(http, server)
        session = hello['session']
        channel = opened_channel(server)
        calls = [channel.call('f', i, timeout=10) for i in range(4)]
        await queued(server, 2)
        _, answer = await poll(http, server, session=session, cursor=0)
        assert [frame['seq'] for frame in answer['frames']] == [1, 2]
        _, answer = await poll(http, server, session=session, cursor=2, hold=3)
        assert [frame['seq'] for frame in answer['frames']][:1] == [3]
        assert server.status()['sent'] == 4 and server.status()['acked'] == 2
        for task in calls:
            task.cancel()
