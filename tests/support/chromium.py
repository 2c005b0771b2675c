"""Headless Chromium: Debian's binary and the flags every launch uses, a tab that collects its
errors, and a page connected to a kernel server through a channel (Playwright's objects are
passed in, so importing this module imports no Playwright)."""

from __future__ import annotations

from typing import Any, TypeVar

import jchannel_http

H = TypeVar('H')

CHROMIUM = '/usr/bin/chromium'
"""Debian's chromium, which tests/run_all.sh installs."""
CHROMIUM_ARGS = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
]
"""Without the networking flags Chromium keeps trying hosts it cannot reach."""
LAUNCH: dict[str, Any] = {'executable_path': CHROMIUM, 'args': CHROMIUM_ARGS}
"""What every ``playwright.chromium.launch(**LAUNCH)`` passes."""
CLIENT_READY_MS = 30_000
"""How long ``open_channel`` waits for ``window.jchannelClient`` (Playwright's default timeout)."""


async def new_page(browser: Any) -> Any:
    """A tab of ``browser`` whose uncaught errors are collected in ``page.errors``."""
    page = await browser.new_page()
    page.errors = []
    page.on('pageerror', lambda error: page.errors.append(error))
    return page


async def open_channel(
    page: Any,
    server: jchannel_http.Server,
    page_side: str,
    handler: object,
    timeout: float = 10,
    page_url: str | None = None,
    client_ready: bool = False,
) -> jchannel_http.Channel:
    """Open ``page_url`` (the server's page by default) in ``page``, open a channel running
    ``page_side`` there within ``timeout`` seconds, with ``handler`` as its kernel side; with
    ``client_ready``, also wait until the page's client is exposed as ``window.jchannelClient``."""
    await page.goto(page_url or server.page_url)
    channel = await server.open(page_side, timeout=timeout)
    channel.handler = handler
    if client_ready:
        await page.wait_for_function('window.jchannelClient !== undefined', timeout=CLIENT_READY_MS)
    return channel


def handler_of(channel: jchannel_http.Channel, kind: type[H]) -> H:
    """The kernel side of ``channel``, checked to be a ``kind`` (for what the test reads from it)."""
    handler = channel.handler
    assert isinstance(handler, kind), (
        f'the handler is a {type(handler).__name__}, not a {kind.__name__}'
    )
    return handler
