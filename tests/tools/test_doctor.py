"""`python -m jchannel_http doctor`: its table matches what the path in between does.

The paths are real nginx reverse proxies started here with generated configs (set up well,
set up badly, behind a login page, behind an interstitial) and the fake cloudflared.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

import jchannel_http
from jchannel_http.tools.doctor import INFO, OK, PROBLEM, SKIPPED, Doctor, Report
from support.colab_proxy import ColabProxy
from support.nginx import CONFIG
from support.ports import free_port, refused_port
from support.stand_ins import FakeCloudflared, install_fake_cloudflared

TOKEN = 'doctor-token-0123456789'
MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def fake_cloudflared(tmp_path, monkeypatch) -> FakeCloudflared:
    return install_fake_cloudflared(tmp_path, monkeypatch)


WELL = """
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 32m;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
            proxy_read_timeout 60s;
        }}
    }}
"""

BADLY = """
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 1m;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_buffering on;
            proxy_ignore_headers X-Accel-Buffering;
            proxy_buffer_size 64k;
            proxy_buffers 8 64k;
            proxy_busy_buffers_size 128k;
            proxy_read_timeout 20s;
        }}
    }}
"""

LOGIN_WALL = """
    server {{
        listen 127.0.0.1:{port};
        location = /login {{
            default_type text/html;
            return 200 '<html><head><title>Sign in</title></head><body><form></form></body></html>';
        }}
        location / {{
            if ($cookie_session = "") {{ return 302 /login?next=$request_uri; }}
            proxy_pass http://127.0.0.1:{upstream};
            proxy_buffering off;
        }}
    }}
"""

INTERSTITIAL = """
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type text/html;
            if ($http_ngrok_skip_browser_warning = "") {{
                return 200 '<html><head><title>ngrok</title></head><body>You are about to visit
                        this site</body></html>';
            }}
            proxy_pass http://127.0.0.1:{upstream};
            proxy_buffering off;
        }}
    }}
"""


class Proxy:
    """nginx in the foreground with one server block, on a free loopback port."""

    def __init__(self, server_block: str, upstream: int) -> None:
        self.port = free_port()
        self.block = server_block.format(port=self.port, upstream=upstream)
        self.tmp = tempfile.TemporaryDirectory(prefix='jchannel-doctor-nginx-')
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    async def start(self) -> Proxy:
        tmp = Path(self.tmp.name)
        config = tmp / 'nginx.conf'
        config.write_text(CONFIG.format(tmp=tmp, servers=self.block))
        binary = shutil.which('nginx') or '/usr/sbin/nginx'
        self.process = subprocess.Popen(
            [binary, '-c', str(config), '-p', str(tmp)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(100):
            if self.process.poll() is not None:
                raise RuntimeError(f'nginx exited: {self.process.communicate()[1].decode()}')
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=0.2).close()
                return self
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError('nginx did not start listening within 5 s')

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stderr is not None:
                self.process.stderr.close()
        self.tmp.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[jchannel_http.Server]:
    """A server accepting 16 MiB bodies, so the path's own cap is what the doctor finds."""
    async with jchannel_http.Server(token=TOKEN, heartbeat=2, max_body=16 * MiB) as server:
        yield server


@pytest.fixture
async def proxy(server, request) -> AsyncIterator[Proxy]:
    proxy = await Proxy(request.param, server.port).start()
    yield proxy
    proxy.stop()


def statuses(report: Report) -> dict[str, str]:
    return {check.key: check.status for check in report.checks}


@pytest.mark.parametrize('proxy', [pytest.param(WELL, id='well')], indirect=True)
async def test_nginx_set_up_well(proxy, server) -> None:
    report = await Doctor(proxy.url, TOKEN).run()
    assert statuses(report) == {
        'reachable': OK,
        'token': OK,
        'sse-get': OK,
        'sse-post': OK,
        'poll': OK,
        'body': OK,
        'post': OK,
        'statuses': OK,
        'interstitial': OK,
        'websocket': INFO,
        'latency': OK,
    }
    assert report.check('body').detail.startswith('8 MiB (the most tried)')
    assert report.check('poll').detail.endswith('the server holds polls up to 25 s')
    assert report.check('websocket').detail.startswith('yes')
    assert report.transport == 'sse-get' and report.exit_status == 0
    text = report.render()
    assert 'The page client will use: sse-get (GET event stream)' in text
    assert 'What to change' not in text
    assert server.status()['connected'] is False  # the doctor released the server


@pytest.mark.parametrize('proxy', [pytest.param(BADLY, id='badly')], indirect=True)
async def test_nginx_set_up_badly(proxy, server) -> None:
    report = await Doctor(proxy.url, TOKEN).run()
    assert statuses(report) == {
        'reachable': OK,
        'token': OK,
        'sse-get': PROBLEM,
        'sse-post': PROBLEM,
        'poll': OK,
        'body': PROBLEM,
        'post': OK,
        'statuses': OK,
        'interstitial': OK,
        'websocket': INFO,
        'latency': OK,
    }
    assert report.check('sse-get').detail.startswith('buffered: no event within 3 s')
    body = report.check('body')
    assert body.detail.startswith('1 MiB; 2 MiB refused on the path (HTTP 413 an HTML page')
    assert "the server's max_body is 16 MiB, but a body of that size is refused" in body.detail
    assert 'client_max_body_size' in body.advice
    assert report.check('websocket').detail.startswith('no: the Upgrade header was dropped')
    assert report.transport == 'poll' and report.exit_status == 0
    text = report.render()
    assert 'The page client will use: poll (long-poll)' in text
    assert (
        '- GET event stream unbuffered: a proxy holds GET event streams. nginx: '
        'proxy_buffering off' in text
    )


@pytest.mark.parametrize('proxy', [pytest.param(LOGIN_WALL, id='login-wall')], indirect=True)
async def test_a_login_page_is_detected_and_a_cookie_gets_through(proxy) -> None:
    def doctor(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, '-m', 'jchannel_http', 'doctor', proxy.url, '--token', TOKEN, *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
        )

    refused = await asyncio.to_thread(doctor)
    assert refused.returncode == 1
    assert (
        'reachable                      PROBLEM  not the kernel server: HTTP 200 an HTML '
        "page ('Sign in')" in refused.stdout
    )
    assert 'a login page answers' in refused.stdout
    assert 'The page client will find no working transport.' in refused.stdout

    admitted = await asyncio.to_thread(doctor, '-H', 'Cookie: session=1', '--json')
    assert admitted.returncode == 0
    report = json.loads(admitted.stdout)
    assert report['transport'] == 'sse-get'
    assert {check['key']: check['status'] for check in report['checks']}['reachable'] == OK


@pytest.mark.parametrize('proxy', [pytest.param(INTERSTITIAL, id='interstitial')], indirect=True)
async def test_an_interstitial_shown_to_browsers_is_reported(proxy, server) -> None:
    report = await Doctor(server.page_url.replace(server.url, proxy.url)).run()
    interstitial = report.check('interstitial')
    assert interstitial.status == INFO
    assert interstitial.detail.startswith("a browser opening the page URL first sees 'ngrok'")
    assert 'ngrok-skip-browser-warning' in interstitial.advice
    assert report.transport == 'sse-get'  # the token came from the page URL


async def test_through_the_fake_cloudflared(fake_cloudflared) -> None:
    async with jchannel_http.Server(tunnel='cloudflared', token=TOKEN) as server:
        report = await Doctor(server.url, TOKEN).run()
    assert statuses(report) == {
        'reachable': OK,
        'token': OK,
        'sse-get': PROBLEM,
        'sse-post': OK,
        'poll': OK,
        'body': OK,
        'post': OK,
        'statuses': OK,
        'interstitial': OK,
        'websocket': INFO,
        'latency': OK,
    }
    assert report.check('websocket').detail.startswith('yes')
    assert report.transport == 'sse-post'


async def test_an_unreachable_url_a_wrong_token_and_no_token() -> None:
    with refused_port() as port:
        report = await Doctor(f'http://127.0.0.1:{port}', TOKEN).run()
    assert report.check('reachable').status == PROBLEM
    assert report.check('reachable').detail.startswith('no answer: ClientConnectorError')
    assert {check.status for check in report.checks[1:]} == {SKIPPED}
    assert report.exit_status == 1

    async with jchannel_http.Server(token=TOKEN) as server:
        report = await Doctor(server.url, 'not-the-token').run()
        assert report.check('token').detail == 'the server refused the token (401)'
        assert report.check('sse-get').detail == 'the token was not accepted'
        assert report.exit_status == 1
        rendered = report.render()
        assert 'connected as page client' not in rendered
        assert 'released the server' not in rendered
        assert 'The server refused the token' in rendered
        assert 'server.page_url' in report.check('token').advice
        # nothing measured from 401 answers is rated
        assert report.check('latency').status != OK or report.check('latency').detail.endswith(
            '(GET /favicon.ico)'
        )
        assert 'GET /status' not in report.check('latency').detail
        assert 'The transports were not probed: the server refused the token.' in rendered

        report = await Doctor(server.url).run()
        assert report.check('reachable').status == OK
        assert report.check('token').status == SKIPPED
        assert report.check('interstitial').status == OK
        assert report.check('latency').detail.endswith('(GET /favicon.ico)')
        assert report.exit_status == 1
        assert 'The transports were not probed: give the token' in report.render()


async def test_a_connected_page_is_left_alone(server) -> None:
    page = 'page-client-0001'
    async with aiohttp.ClientSession(headers={'Authorization': f'Bearer {TOKEN}'}) as http:
        async with http.get(
            f'{server.url}/events', params={'client': page}, headers={'Accept': 'text/event-stream'}
        ) as stream:
            await stream.content.readuntil(b'\n\n')
            report = await Doctor(server.url, TOKEN).run()
            assert server.status()['client'] == page
    assert report.check('sse-get').status == SKIPPED
    assert report.check('body').status == OK
    assert report.transport == 'sse-get' and report.exit_status == 0
    assert 'A page is connected now (transport sse-get)' in report.render()


@pytest.mark.parametrize('variant', ['streaming', 'buffered'])
async def test_through_the_colab_proxy_stand_in(server, variant) -> None:
    proxy = await ColabProxy(variant).start()
    proxy.proxy_port(server.port)
    try:
        report = await Doctor(proxy.url, TOKEN, deadline=1).run()
    finally:
        await proxy.stop()
    found = statuses(report)
    assert {
        key: found[key]
        for key in (
            'reachable',
            'token',
            'sse-post',
            'poll',
            'body',
            'post',
            'statuses',
            'websocket',
        )
    } == {
        'reachable': OK,
        'token': OK,
        'sse-post': INFO,
        'poll': OK,
        'body': INFO,
        'post': INFO,
        'statuses': INFO,
        'websocket': INFO,
    }
    assert found['sse-get'] == (OK if variant == 'streaming' else PROBLEM)
    assert report.check('post').detail.startswith(
        "no: HTTP 500 'Not allowed'; the GET form of /messages gets an empty 500"
    )
    assert report.check('statuses').detail == "hidden: the server's 401 arrived as an empty 500"
    assert report.transport == ('sse-get' if variant == 'streaming' else 'poll')
    text = report.render()
    assert (
        '- POST passes: POST refused: the page sends its messages and upload chunks in GET'
    ) in text
    assert '- error statuses pass: the path hides error statuses' in text
    assert server.status()['connected'] is False  # released over GET
