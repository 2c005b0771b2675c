"""What the compatibility tests share: code written for jupyter-jchannel, run against
jchannel_http with only its import changed.

Each test module imports ``jchannel_http as jchannel`` (and ``jchannel_http.types`` in place of
``jchannel.types``); everything after that line is written as it would be for the predecessor.
The one step a notebook does by itself, loading the client into the tab, is done here by
opening ``server.page_url`` in a real Chromium page.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import signal
import subprocess
import types

from playwright.async_api import Page

import jchannel_http
from support.proxies import CutProxy

LOREM = (
    'Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n'
    'Sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.\n'
    'Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris.\n'
) * 40
"""The text file the local tutorial streams (its own loremipsum.txt, in other words)."""

INDENT_CODE = """
    (channel) => {
        channel.handler = {
            indentLeft(line, count) {
                return line.padStart(line.length + count);
            },
            indentRight(line, count) {
                return line.padEnd(line.length + count);
            },
        };
    }
"""
"""The tutorials' first channel: the page wraps padStart and padEnd."""


async def load_client(page: Page, server: jchannel_http.Server) -> None:
    """What the notebook does for the predecessor: the tab gets the client and connects."""
    await page.goto(server.page_url)
    await page.wait_for_function(
        "window.jchannelClient !== undefined && window.jchannelClient.state === 'connected'",
        timeout=20_000,
    )


async def indentation_steps(
    server: jchannel_http.Server, jchannel: types.ModuleType, FrontendError: type[BaseException]
) -> None:
    """The tutorials' common steps: open the indentation channel, call it three ways."""
    channel = await server.open(INDENT_CODE)
    task1 = channel.call('indentLeft', 'hello', 4)
    task2 = channel.call('indentRight', 'world', 4)
    await asyncio.sleep(0)  # some code you want to run before retrieving the results
    assert await task2 == 'world    '
    assert await task1 == '    hello'
    assert await channel.call('indentLeft', 'hello', 4) == '    hello'
    try:
        await channel.call('indentRight', 4, 'world')  # arguments in the wrong order
    except FrontendError as error:
        assert 'TypeError' in str(error) and 'padEnd' in str(error)
    else:
        raise AssertionError('the wrong order of arguments did not raise')


class NgrokStandIn(types.ModuleType):
    """The ngrok SDK as the Binder tutorial uses it: ``await ngrok.forward(addr=PORT,
    authtoken_from_env=True)`` returns a listener whose ``url()`` reaches the port. Here the
    "tunnel" is a loopback TCP proxy on another free port."""

    def __init__(self) -> None:
        super().__init__('ngrok')
        self.proxies: list[CutProxy] = []
        self.forwarded: list[tuple] = []

    async def forward(self, addr: int, authtoken_from_env: bool = False, **options: object):
        self.forwarded.append((addr, authtoken_from_env, options))
        proxy = await CutProxy(int(addr)).start()
        self.proxies.append(proxy)
        url = f'http://127.0.0.1:{proxy.port}'
        return types.SimpleNamespace(url=lambda: url)

    async def close(self) -> None:
        for proxy in self.proxies:
            await proxy.stop()


class CloudflareWrapper:
    """The Colab tutorial's little wrapper of the cloudflared binary, in other words: run a quick
    tunnel to ``http://host:port``, read its address from the log, stop it with SIGINT."""

    ADDRESS = re.compile(r'(https://[^\s|]+)')

    def __init__(self, path: str) -> None:
        self.path = path
        self.process: subprocess.Popen | None = None

    def ingress(self, host: str, port: int) -> str:
        self.egress()
        args = shlex.split(f'{self.path} --url http://{host}:{port}')
        self.process = subprocess.Popen(args, stderr=subprocess.PIPE)
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            found = self.ADDRESS.search(raw.decode())
            if found:
                return found.group(1)
        raise ConnectionError('cloudflared gave no address')

    def egress(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None
