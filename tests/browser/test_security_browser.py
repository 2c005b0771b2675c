"""Security with the real client in headless Chromium: the token leaves no trace, a third party
cannot make the page run anything, and a flood of bad requests does not disturb the page."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import orjson
from aiohttp import web
from playwright.async_api import Browser, Page

import jchannel_http
from support.chromium import handler_of, new_page, open_channel
from support.counting import COUNTING_PAGE, CountingKernel

PAGE_SIDE = COUNTING_PAGE
EVIL_ORIGIN = 'http://third-party.test'
PWNED = '() => { window.pwned = true; return "pwned"; }'


KernelSide = CountingKernel


async def connect(
    browser: Browser, server: jchannel_http.Server
) -> tuple[Page, jchannel_http.Channel]:
    page = await new_page(browser)
    return page, await open_channel(page, server, PAGE_SIDE, KernelSide(), 20)


async def test_the_token_leaves_no_trace_after_the_page_loads(server, browser) -> None:
    page = await browser.new_page()
    requests = []
    page.on('request', lambda request: requests.append(request))
    await page.goto(server.page_url)
    await page.wait_for_function(
        "document.getElementById('jchannel-state').textContent === 'connected'", timeout=20_000
    )
    await page.wait_for_function(
        "document.getElementById('jchannel-status').textContent.includes('\"connected\"')",
        timeout=20_000,
    )
    token = server.token
    assert token not in page.url and page.url == f'{server.url}/page'
    assert token not in await page.evaluate('location.href + document.referrer')
    assert await page.evaluate("sessionStorage.getItem('jchannel-token')") == token
    navigation, *others = requests
    assert navigation.url == server.page_url
    assert {request.url.split('?')[0].rsplit('/', 1)[-1] for request in others} >= {
        'client.js',
        'events',
        'status',
    }
    for request in others:
        headers = await request.all_headers()
        assert token not in request.url, request.url
        assert token not in headers.get('referer', ''), request.url
        if not request.url.endswith(('/client.js', '/favicon.ico')):
            assert headers['authorization'] == f'Bearer {token}', request.url


async def test_a_page_without_the_token_says_which_address_to_open(server, browser) -> None:
    for address in (f'{server.url}/page', f'{server.url}/page?token=not-the-token'):
        page = await browser.new_page()
        try:
            await page.goto(address)
            await page.wait_for_function(
                "document.getElementById('jchannel-state').textContent.startsWith('failed')",
                timeout=20_000,
            )
            shown = await page.evaluate("document.getElementById('jchannel-state').textContent")
            assert 'refused the token (401)' in shown, shown
            assert (
                'open the address the kernel printed (server.page_url, with its token)' in shown
            ), shown
            assert 'given to start()' not in shown
        finally:
            await page.close()
    assert server.status()['connected'] is False


@contextlib.asynccontextmanager
async def third_party_site(html: str) -> AsyncIterator[str]:
    """Another origin on the loopback interface, serving ``html`` at its root."""

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type='text/html')

    app = web.Application()
    app.router.add_get('/', index)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, '127.0.0.1', 0)
    await site.start()
    try:
        yield f'http://127.0.0.1:{runner.addresses[0][1]}/'
    finally:
        await runner.cleanup()


async def test_a_page_of_a_refused_origin_stops_and_says_which_origin_to_allow(browser) -> None:
    async with jchannel_http.Server(
        token='origin-token-0123', heartbeat=1, allow_origins=['http://ok.test']
    ) as server:
        html = (
            f'<!DOCTYPE html><script src="{server.url}/client.js"></script><script>'
            'window.seen = [];'
            f'jchannel.start({orjson.dumps(server.page_url).decode()}, {{'
            '  onstatechange: (c) => window.seen.push([c.state, c.lastError?.message]),'
            '}).then(() => { window.outcome = "connected"; },'
            '        (e) => { window.outcome = e.message; });'
            '</script>'
        )
        async with third_party_site(html) as site:
            origin = site.rstrip('/')
            page = await browser.new_page()
            sent: list[str] = []
            page.on(
                'request',
                lambda request: (
                    sent.append(request.url) if request.url.startswith(server.url) else None
                ),
            )
            try:
                await page.goto(site)
                await page.wait_for_function('window.outcome !== undefined', timeout=20_000)
                outcome = await page.evaluate('window.outcome')
                state, last_error = (await page.evaluate('window.seen'))[-1]
                allow = f"allow_origins=['http://ok.test', '{origin}']"
                assert state == 'failed'
                for said in (outcome, last_error):
                    assert "the server refuses this page's origin (403 forbidden_origin)" in said
                    assert allow in said, said
                count = len(sent)
                await asyncio.sleep(3)  # three heartbeats: a page that retried would ask again
                assert sent[count:] == []
            finally:
                await page.close()
        assert server.status()['connected'] is False


async def attempts_without_the_token(server: jchannel_http.Server, client: str) -> list[int]:
    """Everything a third party without the token might try; returns the statuses."""
    session = server.status()['session']
    open_frame = orjson.dumps(
        {
            'client': client,
            'session': session,
            'ack': 0,
            'messages': [{'seq': 1, 'type': 'open', 'call': 1, 'channel': 99, 'code': PWNED}],
        }
    )
    call_frame = orjson.dumps(
        {
            'client': client,
            'session': session,
            'ack': 0,
            'messages': [
                {'seq': 1, 'type': 'call', 'call': 1, 'channel': 1, 'name': 'count', 'args': [1]}
            ],
        }
    )
    statuses = []
    async with aiohttp.ClientSession() as bare:
        for token in (None, 'guess', server.token[:-1]):
            auth = {'Authorization': f'Bearer {token}'} if token else {}
            for method, path, params, data in [
                ('POST', '/messages', {}, open_frame),
                ('POST', '/messages', {}, call_frame),
                ('GET', '/events', {'client': 'third-party-1'}, None),
                ('GET', '/events', {'client': client, 'session': session}, None),
                ('POST', '/events', {'client': 'third-party-1'}, None),
                ('GET', '/poll', {'client': 'third-party-1'}, None),
                ('POST', '/release', {'client': client}, None),
                ('GET', '/status', {}, None),
            ]:
                if token and method == 'GET' and path == '/status':
                    params = {'token': token}
                    auth = {}
                async with bare.request(
                    method,
                    server.url + path,
                    params=params,
                    data=data,
                    headers={'Origin': EVIL_ORIGIN, **auth},
                ) as response:
                    assert (await response.json())['error'] == 'unauthorized'
                    statuses.append(response.status)
    return statuses


async def test_a_third_party_cannot_make_the_page_evaluate_anything(server, browser) -> None:
    page, channel = await connect(browser, server)
    assert await channel.call('count', 1, timeout=20) == 1
    before = server.status()
    statuses = await attempts_without_the_token(server, before['client'])
    assert set(statuses) == {401}

    evil = await browser.new_page()  # a page of another origin, with the public client
    async with third_party_site(f'<script src="{server.url}/client.js"></script>') as evil_url:
        await evil.goto(evil_url)
    outcome = await evil.evaluate(
        """async ([url, session, client, code]) => {
        const tried = [];
        const client_ = await jchannel.start(url, {token: 'guess'}).then(
            () => 'connected', (error) => error.message);
        tried.push(client_);
        const body = JSON.stringify({client, session, ack: 0, messages: [
            {seq: 1, type: 'open', call: 1, channel: 99, code}]});
        for (const target of [`${url}/messages`, `${url}/messages?token=guess`]) {
            const response = await fetch(target, {method: 'POST', body});  // no preflight
            tried.push(response.status);
        }
        return tried;
    }""",
        [server.url, before['session'], before['client'], PWNED],
    )
    assert 'token' in outcome[0] and '401' in outcome[0]
    assert outcome[1:] == [401, 401]

    # with the token, a frame that would make the page run code is refused as well (numbered
    # as a frame the page already sent, so that the page's own numbering is not disturbed)
    async with aiohttp.ClientSession() as holder:
        body = orjson.dumps(
            {
                'client': before['client'],
                'session': before['session'],
                'ack': 0,
                'messages': [{'seq': 1, 'type': 'open', 'call': 1, 'channel': 99, 'code': PWNED}],
            }
        )
        async with holder.post(
            f'{server.url}/messages', data=body, headers={'Authorization': f'Bearer {server.token}'}
        ) as response:
            assert response.status == 200
            assert (await response.json())['ack'] == before['received']

    assert await page.evaluate('window.pwned') is None
    assert await evil.evaluate('window.pwned') is None
    after = server.status()
    for key in ('session', 'client', 'sent', 'received', 'connected'):
        assert after[key] == before[key], key
    assert await channel.call('count', 2) == 2
    assert await page.evaluate("channel.call('count', 3)") == 3
    assert page.errors == []  # type: ignore[attr-defined]  # new_page() gives a Page this list


class Bad:
    """One kind of bad request and the answer it must get."""

    def __init__(
        self,
        name: str,
        method: str,
        path: str,
        status: int,
        code: str,
        *,
        token: str | None = 'token',
        params: dict | None = None,
        data: bytes | None = None,
    ) -> None:
        self.name = name
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.token = token
        self.params = params or {}
        self.data = data


def bad_requests(server: jchannel_http.Server, client: str, session: str) -> list[Bad]:
    def posted(**fields) -> bytes:
        return orjson.dumps(
            {'client': client, 'session': session, 'ack': 0, 'messages': [], **fields}
        )

    return [
        Bad('no token', 'GET', '/status', 401, 'unauthorized', token=None),
        Bad('wrong token', 'POST', '/messages', 401, 'unauthorized', token='wrong', data=posted()),
        Bad('malformed JSON', 'POST', '/messages', 400, 'bad_request', data=b'{"client":'),
        Bad(
            'a frame without a sequence number',
            'POST',
            '/messages',
            400,
            'bad_request',
            data=posted(messages=[{'type': 'exec', 'call': 1}]),
        ),
        Bad('unknown field', 'POST', '/messages', 400, 'bad_request', data=posted(x=1)),
        Bad('malformed client id', 'GET', '/events', 400, 'bad_request', params={'client': 'no!'}),
        Bad(
            'a second client streaming',
            'GET',
            '/events',
            409,
            'client_conflict',
            params={'client': 'flood-client-1'},
        ),
        Bad(
            'a second client posting',
            'POST',
            '/messages',
            409,
            'client_conflict',
            data=posted(client='flood-client-1'),
        ),
        Bad(
            'a session that is over',
            'POST',
            '/messages',
            410,
            'resync',
            data=posted(session='over'),
        ),
        Bad('unknown channel', 'POST', '/channels/none/call/count', 404, 'not_found', data=b'[1]'),
        Bad('unknown endpoint', 'GET', '/admin', 404, 'not_found'),
        Bad('wrong method', 'DELETE', '/status', 405, 'method_not_allowed'),
    ]


TOO_LARGE = Bad(
    'a body over max_body', 'POST', '/messages', 413, 'too_large', data=b' ' * (1024 * 1024 + 1)
)


async def flood(
    server: jchannel_http.Server,
    kinds: list[Bad],
    start: int,
    count: int,
    http: aiohttp.ClientSession,
    tally: collections.Counter,
) -> None:
    """Send ``count`` bad requests, 16 at a time, and tally (kind, whether answered right)."""
    gate = asyncio.Semaphore(16)

    async def one(number: int) -> None:
        bad = TOO_LARGE if number % 500 == 0 else kinds[number % len(kinds)]
        headers = (
            {'Authorization': f'Bearer {server.token if bad.token == "token" else bad.token}'}
            if bad.token
            else {}
        )
        async with gate:
            async with http.request(
                bad.method, server.url + bad.path, params=bad.params, data=bad.data, headers=headers
            ) as response:
                content = await response.read()
        right = (
            response.status == bad.status
            and response.content_type == 'application/json'
            and orjson.loads(content)['error'] == bad.code
        )
        tally[bad.name, right] += 1

    await asyncio.gather(*(one(number) for number in range(start, start + count)))


async def test_a_flood_of_bad_requests_while_the_page_makes_a_thousand_calls(browser) -> None:
    async with jchannel_http.Server() as server:
        page, channel = await connect(browser, server)
        status = server.status()
        kinds = bad_requests(server, status['client'], status['session'])
        tally: collections.Counter = collections.Counter()
        waves, per_wave, calls_per_wave = 10, 1000, 100
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as http:
            for wave in range(waves):  # in each wave, bad requests and calls run together
                first = wave * calls_per_wave
                page_calls = page.evaluate(
                    """(first) => Promise.all(Array.from({length: 100},
                    (_, i) => channel.call('count', first + i)))""",
                    first,
                )
                kernel_calls = [
                    channel.call('count', first + i, timeout=60) for i in range(calls_per_wave)
                ]
                results = await asyncio.gather(
                    page_calls,
                    asyncio.gather(*kernel_calls),
                    flood(server, kinds, wave * per_wave, per_wave, http, tally),
                )
                expected = list(range(first, first + calls_per_wave))
                assert results[0] == expected and results[1] == expected
        assert sum(tally.values()) == waves * per_wave
        wrong = {name: n for (name, right), n in tally.items() if not right}
        assert wrong == {}
        assert {name for name, _ in tally} == {bad.name for bad in [*kinds, TOO_LARGE]}
        assert handler_of(channel, CountingKernel).seen == collections.Counter(
            range(waves * calls_per_wave)
        )
        seen = await page.evaluate('window.seen')
        assert len(seen) == waves * calls_per_wave and set(seen.values()) == {1}
        after = server.status()
        assert (after['session'], after['client']) == (status['session'], status['client'])
        assert after['pending_calls'] == 0
        assert page.errors == []  # type: ignore[attr-defined]  # new_page() gives a Page this list  # type: ignore[attr-defined]  # new_page() gives a Page this list
