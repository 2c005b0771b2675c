"""start(tunnel=...): every value, against local stand-ins of cloudflared, ngrok and Colab.

The real services cannot be reached from CI: the fake cloudflared (tests/fixtures/bin) prints the
real banner, serves the metrics endpoint and proxies over HTTPS with the real one's habit of
holding GET responses; the fake google.colab answers proxyPort() as Colab's page would.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import jchannel_http
from jchannel_http import TunnelError
from jchannel_http.tunnels import (
    CloudflaredLauncher,
    ColabLauncher,
    JupyterServerProxyLauncher,
    NgrokLauncher,
)
from support.colab_proxy import ColabProxy
from support.fake_page import EventReader
from support.stand_ins import (
    FIXTURES,
    FakeCloudflared,
    install_fake_cloudflared,
    install_fake_colab,
    process_gone,
)

TOKEN = 'tunnel-token-0123456789'
AUTH = {'Authorization': f'Bearer {TOKEN}'}


@pytest.fixture
def fake_cloudflared(tmp_path, monkeypatch) -> FakeCloudflared:
    return install_fake_cloudflared(tmp_path, monkeypatch)


@pytest.fixture
async def colab_proxy() -> AsyncIterator[ColabProxy]:
    proxy = await ColabProxy().start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def fake_colab(monkeypatch, colab_proxy) -> types.ModuleType:
    return install_fake_colab(monkeypatch, colab_proxy)


def cloudflared_children() -> list[int]:
    """Processes started by this one from a cloudflared binary, reaped or not."""
    found = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / 'stat').read_text()
            cmdline = (entry / 'cmdline').read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(')', 1)[1].split()[1])
        if parent == os.getpid() and b'cloudflared' in cmdline + stat.encode():
            found.append(int(entry.name))
    return found


def port_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(('127.0.0.1', port)) != 0


class Multiplier:
    def multiply(self, a, b):
        return a * b


async def read_for(response: aiohttp.ClientResponse, seconds: float) -> bytes:
    """Whatever of the body arrives within ``seconds``."""
    received = bytearray()

    async def read() -> None:
        while chunk := await response.content.readany():
            received.extend(chunk)

    try:
        await asyncio.wait_for(read(), seconds)  # asyncio.timeout() is Python 3.11's
    except asyncio.TimeoutError:
        pass
    return bytes(received)


# -- cloudflared ----------------------------------------------------------------------------


async def test_cloudflared_gives_its_url_carries_calls_and_ends_with_the_server(
    fake_cloudflared,
) -> None:
    server = await jchannel_http.start(tunnel='cloudflared', token=TOKEN, heartbeat=1)
    try:
        assert isinstance(server.tunnel, CloudflaredLauncher)
        pid = server.tunnel.pid
        assert pid in cloudflared_children()
        assert server.url.startswith('https://127.0.0.1:')
        assert server.url != f'http://127.0.0.1:{server.port}'
        assert server.page_url == f'{server.url}/page?token={TOKEN}'
        channel = jchannel_http.Channel(server, '(channel) => {}', name='math')
        channel.handler = Multiplier()
        async with fake_cloudflared.session(headers=AUTH) as http:
            async with http.post(
                f'{server.url}/channels/math/call/multiply', data='[6, 7]'
            ) as response:
                assert (response.status, await response.json()) == (200, {'result': 42})
            async with http.get(f'{server.url}/status') as response:
                assert (await response.json())['connected'] is False
            query = {'client': 'tunnel-client-1'}
            headers = {'Accept': 'text/event-stream'}
            async with http.post(f'{server.url}/events', params=query, headers=headers) as response:
                assert (await read_for(response, 2)).startswith(b'event: hello\n')

            async def held() -> None:
                async with http.get(f'{server.url}/events', params=query, headers=headers):
                    pass

            with pytest.raises(asyncio.TimeoutError):  # held whole, as by the real one
                await asyncio.wait_for(held(), 1.5)
    finally:
        await server.stop()
    assert server.tunnel.pid is None
    assert process_gone(pid)
    assert cloudflared_children() == []


def test_cloudflared_ends_with_a_kernel_that_exits_without_stopping(fake_cloudflared) -> None:
    code = (
        'import asyncio, jchannel_http\n'
        'async def main():\n'
        '    server = await jchannel_http.start(tunnel="cloudflared")\n'
        '    print(server.tunnel.pid, flush=True)\n'
        'asyncio.run(main())\n'
    )
    done = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, timeout=60, check=True
    )
    pid = int(done.stdout.split()[0])

    def ended() -> bool:  # gone, or dead and waiting for init to reap it
        try:
            return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] == 'Z'
        except FileNotFoundError:
            return True

    for _ in range(50):
        if ended():
            break
        time.sleep(0.1)
    try:
        assert ended()
    finally:
        if not ended():
            os.kill(pid, signal.SIGKILL)


async def test_cloudflared_url_from_the_metrics_endpoint_alone(fake_cloudflared) -> None:
    fake_cloudflared.set('BANNER', '0')
    async with jchannel_http.Server(tunnel='cloudflared', token=TOKEN) as server:
        assert server.url.startswith('https://127.0.0.1:')
        async with fake_cloudflared.session(headers=AUTH) as http:
            async with http.get(f'{server.url}/status') as response:
                assert response.status == 200
    assert cloudflared_children() == []


async def test_cloudflared_path_option_finds_a_binary_off_path(
    fake_cloudflared, monkeypatch
) -> None:
    monkeypatch.setenv('PATH', os.path.dirname(sys.executable))
    binary = str(FIXTURES / 'bin' / 'cloudflared')
    async with jchannel_http.Server(tunnel='cloudflared', cloudflared_path=binary) as server:
        assert server.url.startswith('https://127.0.0.1:')
    assert cloudflared_children() == []


async def test_cloudflared_missing_says_how_to_install_and_releases_the_port(
    monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv('PATH', str(tmp_path))
    server = jchannel_http.Server(tunnel='cloudflared')
    with pytest.raises(TunnelError) as caught:
        await server.start()
    message = str(caught.value)
    assert 'not on PATH' in message and 'brew install cloudflared' in message
    assert 'cloudflared_path=' in message
    assert port_closed(server.port) and not server.running

    not_executable = tmp_path / 'cloudflared'
    not_executable.write_text('')
    with pytest.raises(TunnelError, match='is not an executable file'):
        await jchannel_http.start(tunnel='cloudflared', cloudflared_path=str(not_executable))


async def test_cloudflared_that_fails_is_reported_with_its_output(fake_cloudflared) -> None:
    fake_cloudflared.set('FAIL', 'dial tcp: lookup api.trycloudflare.com: no such host')
    server = jchannel_http.Server(tunnel='cloudflared')
    with pytest.raises(TunnelError) as caught:
        await server.start()
    message = str(caught.value)
    assert 'exited with status 1 before giving a URL' in message
    assert 'failed to request quick Tunnel: dial tcp: lookup api.trycloudflare.com' in message
    assert port_closed(server.port)
    assert cloudflared_children() == []


async def test_cloudflared_url_that_never_answers_times_out_and_leaves_nothing(
    fake_cloudflared,
) -> None:
    fake_cloudflared.set('DELAY', '60')
    server = jchannel_http.Server(tunnel='cloudflared', tunnel_timeout=1.5)
    with pytest.raises(TunnelError) as caught:
        await server.start()
    message = str(caught.value)
    assert 'did not reach this server within 1.5 s' in message
    assert 'python -m jchannel_http doctor https://127.0.0.1:' in message
    assert port_closed(server.port)
    assert cloudflared_children() == []


async def test_cancelling_start_leaves_no_process(fake_cloudflared) -> None:
    fake_cloudflared.set('DELAY', '60')
    server = jchannel_http.Server(tunnel='cloudflared')
    starting = server.start()
    for _ in range(100):
        if cloudflared_children():
            break
        await asyncio.sleep(0.05)
    assert cloudflared_children()
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert cloudflared_children() == []
    assert port_closed(server.port)


# -- custom launchers and bad values --------------------------------------------------------


class RecordingLauncher:
    """A custom launcher: it reaches the server directly, and records what was asked of it."""

    def __init__(self, fail: Exception | None = None, url: object = None) -> None:
        self.fail = fail
        self.url = url
        self.calls: list[tuple] = []

    async def start(self, port: int) -> object:
        self.calls.append(('start', port))
        if self.fail is not None:
            raise self.fail
        return self.url if self.url is not None else f'http://127.0.0.1:{port}/prefix/'

    async def stop(self) -> None:
        self.calls.append(('stop',))


async def test_a_custom_launcher_gives_the_url_and_is_stopped_once() -> None:
    launcher = RecordingLauncher()
    server = await jchannel_http.start(tunnel=launcher, token=TOKEN)  # type: ignore[arg-type]  # its start() may return a bad URL, on purpose
    tunnel: object = server.tunnel  # a Launcher whose start() may give a bad value
    assert tunnel is launcher
    assert server.url == f'http://127.0.0.1:{server.port}/prefix'
    await server.stop()
    await server.stop()
    assert launcher.calls == [('start', server.port), ('stop',)]


@pytest.mark.parametrize(
    'launcher, expected',
    [
        (
            RecordingLauncher(fail=RuntimeError('no route to the relay')),
            'failed to start: no route to the relay',
        ),
        (RecordingLauncher(url='ftp://example.invalid'), "returned 'ftp://example.invalid'"),
    ],
)
async def test_a_failing_custom_launcher_is_stopped_and_the_port_released(
    launcher, expected
) -> None:
    server = jchannel_http.Server(tunnel=launcher)
    with pytest.raises(TunnelError, match=expected) as caught:
        await server.start()
    assert launcher.calls == [('start', server.port), ('stop',)]
    assert port_closed(server.port)
    if isinstance(launcher.fail, RuntimeError):
        assert caught.value.__cause__ is launcher.fail


def test_bad_tunnel_values_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match=r"unknown tunnel 'cloudflare'.*'cloudflared'"):
        jchannel_http.Server(tunnel='cloudflare')
    with pytest.raises(TypeError, match='async start\\(port\\) -> url and async stop\\(\\)'):
        jchannel_http.Server(tunnel=42)  # type: ignore[arg-type]  # refused at run time, the point
    with pytest.raises(ValueError, match='url= or tunnel=, not both'):
        jchannel_http.Server(tunnel='cloudflared', url='http://example.invalid')
    with pytest.raises(ValueError, match='tunnel_timeout must be a positive'):
        jchannel_http.Server(tunnel='cloudflared', tunnel_timeout=0)


# -- ngrok ----------------------------------------------------------------------------------


class NgrokModule(types.ModuleType):
    """The stand-in module's attributes."""

    calls: list[tuple[Any, ...]]
    forward: Callable[..., Any]
    disconnect: Callable[..., None]


def ngrok_stand_in(fail: Exception | None = None) -> NgrokModule:
    """A module with the ngrok SDK's forward() and disconnect(), forwarding nothing."""
    module = NgrokModule('ngrok')
    module.calls = []

    class Listener:
        def __init__(self, url: str) -> None:
            self._url = url

        def url(self) -> str:
            return self._url

    def forward(addr, **options):
        module.calls.append(('forward', addr, options))
        if fail is not None:
            raise fail
        return Listener(f'http://{addr}')

    def disconnect(url=None):
        module.calls.append(('disconnect', url))

    module.forward, module.disconnect = forward, disconnect
    return module


async def test_ngrok_without_the_package_names_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, 'ngrok', None)  # import ngrok fails
    monkeypatch.setenv('NGROK_AUTHTOKEN', 'token')
    with pytest.raises(TunnelError, match=r'needs the ngrok package.*pip install ngrok'):
        await jchannel_http.start(tunnel='ngrok')


async def test_ngrok_without_a_token_names_the_variable(monkeypatch) -> None:
    module = ngrok_stand_in()
    monkeypatch.setitem(sys.modules, 'ngrok', module)
    monkeypatch.delenv('NGROK_AUTHTOKEN', raising=False)
    with pytest.raises(TunnelError, match='NGROK_AUTHTOKEN, which is not set'):
        await jchannel_http.start(tunnel='ngrok')
    assert module.calls == []


async def test_ngrok_forwards_the_port_and_disconnects_on_stop(monkeypatch) -> None:
    module = ngrok_stand_in()
    monkeypatch.setitem(sys.modules, 'ngrok', module)
    monkeypatch.setenv('NGROK_AUTHTOKEN', 'token')
    async with jchannel_http.Server(tunnel='ngrok', token=TOKEN) as server:
        assert isinstance(server.tunnel, NgrokLauncher)
        assert server.url == f'http://127.0.0.1:{server.port}'
        assert module.calls == [
            ('forward', f'127.0.0.1:{server.port}', {'authtoken_from_env': True})
        ]
        async with aiohttp.ClientSession(headers=AUTH) as http:
            async with http.get(f'{server.url}/status') as response:
                assert response.status == 200
    assert module.calls[-1] == ('disconnect', server.url)


async def test_a_server_started_again_opens_its_tunnel_again(monkeypatch) -> None:
    module = ngrok_stand_in()
    monkeypatch.setitem(sys.modules, 'ngrok', module)
    monkeypatch.setenv('NGROK_AUTHTOKEN', 'token')
    server = jchannel_http.Server(tunnel='ngrok', token=TOKEN)
    for _ in range(2):
        await server.start()
        assert server.url == f'http://127.0.0.1:{server.port}'
        async with aiohttp.ClientSession(headers=AUTH) as http:
            async with http.get(f'{server.url}/status') as response:
                assert response.status == 200
        await server.stop()
    assert [call[0] for call in module.calls] == ['forward', 'disconnect', 'forward', 'disconnect']


async def test_ngrok_refusal_keeps_the_cause(monkeypatch) -> None:
    refusal = ValueError('ERR_NGROK_105: the authtoken you specified is not valid')
    monkeypatch.setitem(sys.modules, 'ngrok', ngrok_stand_in(fail=refusal))
    monkeypatch.setenv('NGROK_AUTHTOKEN', 'wrong')
    server = jchannel_http.Server(tunnel='ngrok')
    with pytest.raises(
        TunnelError, match='ngrok refused to open the tunnel: ERR_NGROK_105'
    ) as caught:
        await server.start()
    assert caught.value.__cause__ is refusal
    assert port_closed(server.port)


# -- Colab ----------------------------------------------------------------------------------


async def test_colab_asks_the_page_for_the_proxy_url(fake_colab, colab_proxy) -> None:
    async with jchannel_http.Server(tunnel='colab', token=TOKEN) as server:
        assert isinstance(server.tunnel, ColabLauncher)
        assert fake_colab.evaluated == [f'google.colab.kernel.proxyPort({server.port})']
        assert server.url == colab_proxy.url
        async with aiohttp.ClientSession(headers=AUTH) as http:
            async with http.get(f'{server.url}/status') as response:
                assert response.status == 200
        assert colab_proxy.target == server.port


async def test_colab_page_that_does_not_answer_times_out(fake_colab, monkeypatch) -> None:
    monkeypatch.setenv('FAKE_COLAB_SILENT', '1')
    server = jchannel_http.Server(tunnel='colab', tunnel_timeout=0.3)
    with pytest.raises(TunnelError, match=r'did not answer google.colab.kernel.proxyPort'):
        await server.start()
    assert port_closed(server.port)


async def test_colab_blocks_the_loop_in_short_slices_only(fake_colab, monkeypatch) -> None:
    monkeypatch.setenv('FAKE_COLAB_SILENT', '1')
    monkeypatch.setattr('jchannel_http.tunnels.colab.EVAL_JS_SLICE', 0.3)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.ensure_future(tick())
    try:
        with pytest.raises(TunnelError, match='did not answer'):
            await jchannel_http.Server(tunnel='colab', tunnel_timeout=1.2).start()
    finally:
        ticker.cancel()
    assert len(fake_colab.blocked) >= 3 and max(fake_colab.blocked) <= 0.45
    assert ticks >= len(fake_colab.blocked) - 1  # the loop ran between the slices


async def test_colab_waits_for_calls_in_flight_before_it_blocks(fake_colab, colab_proxy) -> None:
    async with jchannel_http.Server(token=TOKEN, heartbeat=1) as first:
        async with aiohttp.ClientSession(headers=AUTH) as http:
            events = await http.get(
                f'{first.url}/events',
                params={'client': 'colab-first-1'},
                headers={'Accept': 'text/event-stream'},
            )
            reader = EventReader(events)
            session = (await reader.event())['data']['session']
            channel = jchannel_http.Channel(first, '(c) => {}')
            opening = channel.open(timeout=10)
            opened = await reader.event()  # the open frame: a kernel call in flight
            starting = asyncio.ensure_future(
                jchannel_http.start(tunnel='colab', token=TOKEN, tunnel_timeout=10)
            )
            await asyncio.sleep(0.3)
            assert fake_colab.evaluated == [] and not starting.done()
            await http.post(
                f'{first.url}/messages',
                json={
                    'client': 'colab-first-1',
                    'session': session,
                    'ack': opened['data']['seq'],
                    'messages': [
                        {'seq': 1, 'type': 'result', 'call': opened['data']['call'], 'value': None}
                    ],
                },
            )
            await opening
            second = await asyncio.wait_for(starting, 10)
            assert second.url == colab_proxy.url and len(fake_colab.evaluated) == 1
            await second.stop()
            events.close()


async def test_colab_outside_colab_says_so(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, 'google.colab', None)
    with pytest.raises(TunnelError, match=r"works only in Google Colab.*'cloudflared'"):
        await jchannel_http.start(tunnel='colab')


# -- jupyter-server-proxy and auto ----------------------------------------------------------


async def test_jupyter_server_proxy_url_is_relative_to_the_notebook_server(monkeypatch) -> None:
    monkeypatch.setenv('JUPYTERHUB_SERVICE_PREFIX', '/user/alice/')
    async with jchannel_http.Server(tunnel='jupyter-server-proxy') as server:
        assert server.url == f'/user/alice/proxy/{server.port}'
    monkeypatch.delenv('JUPYTERHUB_SERVICE_PREFIX')
    launcher = JupyterServerProxyLauncher()
    assert await launcher.start(8765) == '/proxy/8765'
    assert await JupyterServerProxyLauncher(base='lab').start(8765) == '/lab/proxy/8765'


async def test_jupyter_server_proxy_missing_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, 'jupyter_server_proxy', None)
    with pytest.raises(TunnelError, match=r'pip install jupyter-server-proxy.*restart'):
        await jchannel_http.start(tunnel='jupyter-server-proxy')


async def test_auto_chooses_colab_in_colab_and_says_why(fake_colab, colab_proxy, caplog) -> None:
    caplog.set_level(logging.INFO, logger='jchannel_http')
    async with jchannel_http.Server(tunnel='auto') as server:
        assert isinstance(server.tunnel, ColabLauncher)
        assert server.url == colab_proxy.url
    assert "tunnel='auto' chose colab: google.colab can be imported" in caplog.text


async def test_auto_chooses_jupyter_server_proxy_on_a_hub(monkeypatch, caplog) -> None:
    caplog.set_level(logging.INFO, logger='jchannel_http')
    monkeypatch.setitem(sys.modules, 'google.colab', None)
    monkeypatch.setenv('JUPYTERHUB_SERVICE_PREFIX', '/user/bob/')
    async with jchannel_http.Server(tunnel='auto') as server:
        assert isinstance(server.tunnel, JupyterServerProxyLauncher)
        assert server.url == f'/user/bob/proxy/{server.port}'
    assert (
        "tunnel='auto' chose jupyter-server-proxy: JUPYTERHUB_SERVICE_PREFIX=/user/bob/"
        in caplog.text
    )


async def test_auto_on_a_hub_without_the_proxy_warns_and_stays_local(monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, 'google.colab', None)
    monkeypatch.setitem(sys.modules, 'jupyter_server_proxy', None)
    monkeypatch.setenv('JUPYTERHUB_SERVICE_PREFIX', '/user/bob/')
    async with jchannel_http.Server(tunnel='auto') as server:
        assert server.tunnel is None
        assert server.url == f'http://127.0.0.1:{server.port}'
    warning = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warning) == 1 and 'pip install jupyter-server-proxy' in warning[0].getMessage()


async def test_auto_elsewhere_is_local(monkeypatch, caplog) -> None:
    caplog.set_level(logging.INFO, logger='jchannel_http')
    monkeypatch.setitem(sys.modules, 'google.colab', None)
    monkeypatch.delenv('JUPYTERHUB_SERVICE_PREFIX', raising=False)
    async with jchannel_http.Server(tunnel='auto') as server:
        assert server.tunnel is None
        assert server.url == f'http://127.0.0.1:{server.port}'
    assert "tunnel='auto' chose no tunnel: neither Google Colab nor JupyterHub" in caplog.text
