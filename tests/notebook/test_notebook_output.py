"""The bootstrap output and its replacement, without a frontend; the stop frame in a plain page."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import pytest
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from playwright.async_api import async_playwright

import jchannel_http
from jchannel_http.notebook.frontend import NotebookOutput, bootstrap_output, status_line
from support.chromium import LAUNCH


@pytest.fixture
def published() -> Iterator[tuple[InteractiveShell, list[dict]]]:
    """An IPython shell whose display messages are recorded."""
    shell = InteractiveShell.instance()
    saved = shell.display_pub
    shell.display_pub = CapturingDisplayPublisher()
    try:
        yield shell, shell.display_pub.outputs
    finally:
        shell.display_pub = saved
        InteractiveShell.clear_instance()


def test_the_bootstrap_is_html_with_a_script_that_cannot_be_closed_early() -> None:
    url = 'http://127.0.0.1:8765/x</script><b>'
    data = bootstrap_output(url, 'secret-token', {'transport': 'poll'}, 'kernel-1.json')
    assert set(data) == {'text/html', 'text/plain'}  # no application/javascript: VS Code
    html = data['text/html']
    assert html.count('<script>') == 1 and html.count('</script>') == 1
    assert '"http://127.0.0.1:8765/x\\u003c/script\\u003e\\u003cb\\u003e"' in html
    assert '"secret-token"' in html and '{"transport":"poll"}' in html
    assert html.startswith('<div data-jchannel-http="http://127.0.0.1:8765/x&lt;/script&gt;')
    assert data['text/plain'] == f'jchannel_http: connecting to {url}'


def test_status_lines_are_inert() -> None:
    data = status_line('http://h:1', 'jchannel_http: connected to http://h:1')
    assert data == {
        'text/html': '<div data-jchannel-http="http://h:1">jchannel_http: connected to '
        'http://h:1</div>',
        'text/plain': 'jchannel_http: connected to http://h:1',
    }


def test_shown_once_per_cell_then_replaced_and_closed(published) -> None:
    shell, outputs = published
    notebook = NotebookOutput('http://h:1', 'tok', {})
    shell.parent_header = {'msg_id': 'cell-1'}
    notebook.show()
    notebook.show()  # the same cell: one bootstrap is enough
    assert len(outputs) == 1 and notebook.pending == 1
    first = outputs[0]['transient']['display_id']
    assert '<script>' in outputs[0]['data']['text/html'] and outputs[0]['update'] is False

    shell.parent_header = {'msg_id': 'cell-2'}
    notebook.show()  # another cell (after a reload, the new tab shows this one)
    second = outputs[1]['transient']['display_id']
    assert first != second and notebook.pending == 2

    notebook.settle('jchannel_http: connected to http://h:1')
    updates = outputs[2:]
    assert [u['transient']['display_id'] for u in updates] == [first, second]
    assert all(u['update'] and '<script' not in u['data']['text/html'] for u in updates)
    assert notebook.pending == 0
    notebook.settle('again')  # nothing pending: nothing sent
    assert len(outputs) == 4

    shell.parent_header = {'msg_id': 'cell-3'}
    notebook.show()
    notebook.close('jchannel_http: the server at http://h:1 was stopped')
    closing = outputs[5:]
    assert len({u['transient']['display_id'] for u in closing}) == 3
    assert all(u['data']['text/plain'].endswith('was stopped') for u in closing)


async def test_stop_makes_a_plain_page_stop_its_client() -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(**LAUNCH)
        try:
            page = await browser.new_page()
            server = await jchannel_http.start()
            await page.goto(server.page_url)
            await server.open('(channel) => 1', timeout=30)
            await server.stop()
            await page.wait_for_function(
                "window.jchannelClient && window.jchannelClient.state === 'stopped'", timeout=30_000
            )
            assert (
                await page.evaluate('window.jchannelClient.lastError.message')
                == 'the kernel server was stopped'
            )
            state = await page.text_content('#jchannel-state')
            assert state is not None
            assert re.fullmatch(r'stopped \(the kernel server was stopped\)', state)
        finally:
            await browser.close()


async def test_a_wait_that_shows_the_bootstrap_lasts_long_enough_for_the_tab_to_load_it(
    published,
) -> None:
    shell, outputs = published
    shell.parent_header = {'msg_id': 'cell-1'}
    server = await jchannel_http.start(client_load_timeout=1.5)
    try:
        # Outside a notebook, timeout alone bounds the wait.
        started = time.monotonic()
        with pytest.raises(jchannel_http.StateError, match=r'waited 0.2 s'):
            await server.open('(channel) => 1', timeout=0.2)
        assert time.monotonic() - started < 1.2
        # In a notebook, the wait shows the bootstrap and lasts at least client_load_timeout.
        server._notebook = NotebookOutput(server.url, server.token, server.client_options())
        started = time.monotonic()
        with pytest.raises(jchannel_http.StateError, match=r'waited 1.5 s'):
            await server.open('(channel) => 1', timeout=0.2)
        assert time.monotonic() - started >= 1.4
        assert len(outputs) == 1 and '<script>' in outputs[0]['data']['text/html']
        # A tab that loads the client after the call's own timeout is still in time.
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(**LAUNCH)
            try:
                page = await browser.new_page()

                async def load_later() -> None:
                    await asyncio.sleep(0.5)
                    await page.goto(server.page_url)

                loading = asyncio.create_task(load_later())
                channel = await server.open('(channel) => "loaded in time"', timeout=0.2)
                await loading
                assert await channel.echo('x') == ['x']
            finally:
                await browser.close()
    finally:
        await server.stop()


def test_client_load_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match='client_load_timeout must be a positive number'):
        jchannel_http.Server(client_load_timeout=0)
