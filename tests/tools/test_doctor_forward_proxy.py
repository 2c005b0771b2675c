"""The doctor goes through the forward proxy the browser uses: ``--proxy``, else HTTP_PROXY and
HTTPS_PROXY, with NO_PROXY honoured. The kernel server is named ``kernel.test``, which only the
real Squid started here resolves, so a doctor that ignores the proxy cannot reach it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

import jchannel_http
from jchannel_http.tools.doctor import OK, PROBLEM, Doctor
from support.intermediaries import ROOT, Squid

TOKEN = 'doctor-proxy-token-0123456789'


@pytest.fixture
async def behind_squid():
    squid = Squid()
    async with jchannel_http.Server(
        token=TOKEN, tunnel=squid, heartbeat=1.5, poll_hold=1.5
    ) as server:
        yield server, squid


@pytest.fixture
def no_proxy_variables(monkeypatch) -> None:
    for name in ('HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'ALL_PROXY'):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


async def test_the_doctor_follows_http_proxy_and_no_proxy(
    behind_squid, no_proxy_variables, monkeypatch
) -> None:
    server, squid = behind_squid
    alone = await Doctor(server.page_url, deadline=2, hold=1.5, timeout=10).run()
    assert alone.check('reachable').status == PROBLEM
    assert '--proxy' in alone.check('reachable').advice
    monkeypatch.setenv('HTTP_PROXY', squid.forward_proxy)
    report = await Doctor(server.page_url, deadline=2, hold=1.5, timeout=10).run()
    assert report.check('reachable').status == OK, report.render()
    assert report.transport == 'sse-get'
    assert f'Through the forward proxy {squid.forward_proxy} (HTTP_PROXY).' in report.render()
    monkeypatch.setenv('NO_PROXY', 'kernel.test')
    bypassed = await Doctor(server.page_url, deadline=2, hold=1.5, timeout=10).run()
    assert bypassed.check('reachable').status == PROBLEM
    assert 'forward proxy' not in bypassed.note


async def test_the_doctor_command_takes_proxy(behind_squid, no_proxy_variables) -> None:
    server, squid = behind_squid
    command = [
        sys.executable,
        '-m',
        'jchannel_http',
        'doctor',
        server.page_url,
        '--proxy',
        squid.forward_proxy,
        '--deadline',
        '2',
    ]
    done = await _run(command)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'The page client will use: sse-get' in done.stdout
    assert f'Through the forward proxy {squid.forward_proxy} (--proxy).' in done.stdout
    bad = await _run([*command[:5], '--proxy', '127.0.0.1:3128'])
    assert bad.returncode == 2 and 'is not an http(s) URL' in bad.stderr


async def _run(command: list[str]) -> subprocess.CompletedProcess:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, 'PYTHONPATH': str(ROOT)},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None  # set once communicate() has seen it exit
    return subprocess.CompletedProcess(
        command, process.returncode, stdout.decode(), stderr.decode()
    )
