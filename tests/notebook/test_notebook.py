"""The library in real notebook frontends: JupyterLab 4, Notebook 7 and NbClassic.

One Jupyter server per frontend (module-scoped, parametrized) serves every test; each test opens
its own notebook, so its own kernel, in a new Chromium tab, and shuts the kernel down at the end.
Cells are run through the frontend as a user runs them; what they print is read from the tab.

VS Code cannot run here. What it needs is what these tests prove in the other frontends: the
bootstrap is an HTML output whose script does everything (VS Code ignores ``Javascript`` outputs),
and it is replaced by a display update.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from support.chromium import LAUNCH
from support.notebook_driver import (
    JupyterServer,
    NotebookTab,
    saved_outputs_html,
)

pytestmark = pytest.mark.timeout(300)

EXAMPLES = Path(__file__).resolve().parent.parent.parent / 'examples'
STATUS = '[data-jchannel-http]'
WAITING_FAILED = re.compile(r'waiting failed: (another page took over|the page went away)')
"""A call sent to a page that left fails: when the page counts as gone, or at the takeover."""

PAGE_SIDE = """(channel) => {
  self.pageChannel = channel;
  self.hung = 0;
  channel.handler = {
    indentLeft(line, count) { return line.padStart(line.length + count); },
    indentRight(line, count) { return line.padEnd(line.length + count); },
    hang(label) { self.hung += 1; return new Promise(() => {}); },
  };
  return 'opened';
}"""

START = f"""
import asyncio, json
import jchannel_http
server = await jchannel_http.start({{options}})
channel = await server.open({PAGE_SIDE!r}, timeout=60)
print('port', server.port)
print('left', json.dumps(await channel.call('indentLeft', 'hello', 4, timeout=60)))
"""


@pytest.fixture(scope='module')
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**LAUNCH)
        yield browser
        browser.close()


@pytest.fixture(scope='module', params=['lab', 'notebook7', 'nbclassic'])
def jupyter(request) -> Iterator[JupyterServer]:
    server = JupyterServer(request.param).start()
    yield server
    server.stop()


@pytest.fixture
def tab(jupyter: JupyterServer, browser: Browser, request) -> Iterator[NotebookTab]:
    name = re.sub(r'\W+', '_', request.node.name) + '.ipynb'
    tab = NotebookTab(jupyter, browser, name)
    try:
        yield tab.open()
    finally:
        tab.close()
        jupyter.shutdown_kernels()


def start(tab: NotebookTab, **options: object) -> int:
    """Start a server in the tab's kernel and open the page channel; the server's port."""
    arguments = ', '.join(f'{name}={value!r}' for name, value in options.items())
    output = tab.run(START.replace('{options}', arguments))
    assert 'left "    hello"' in output, output
    found = re.search(r'port (\d+)', output)
    assert found is not None, output
    return int(found.group(1))


def requests_to(tab: NotebookTab, port: int) -> list[str]:
    return [url for url in tab.requests if url.startswith(f'http://127.0.0.1:{port}/')]


def test_calls_both_ways_several_channels_and_nothing_saved_runs(tab: NotebookTab) -> None:
    port = start(tab)
    assert (
        tab.wait_text(STATUS, lambda text: 'connected' in text, 'connected status')
        == f'jchannel_http: connected to http://127.0.0.1:{port}'
    )
    assert any(url.endswith(f':{port}/client.js') for url in tab.requests)

    output = tab.run("""
print('right', json.dumps(await channel.call('indentRight', 'world', 4)))
try:
    await channel.call('indentRight', 4, 'world')
except jchannel_http.FrontendError as error:
    print('error', error.type, 'padEnd' in error.detail)
""")
    assert 'right "world    "' in output and 'error TypeError True' in output

    # A second channel with a Python handler; the first closes without disturbing it.
    output = tab.run("""
class Arithmetic:
    def multiply(self, a, b):
        return a * b

    def divide(self, a, b):
        return a / b

second = await server.open('(channel) => { self.kernelChannel = channel; return 2; }')
second.handler = Arithmetic()
await channel.close()
print('channels', json.dumps([c['open'] for c in server.status()['channels']]))
print('echo', json.dumps(await second.echo(1, 'two', None)))
print('reopened', json.dumps(await channel.call('indentLeft', 'x', 1)))  # opens it again
""")
    # a closed channel is released on the kernel: only the second one is left
    assert 'channels [true]' in output and 'echo [1, "two", null]' in output
    assert 'reopened " x"' in output

    saved = tab.save()
    html = saved_outputs_html(saved)
    assert 'jchannel_http: connected to' in html
    assert '<script' not in html and 'client.js' not in html
    assert not any(
        'application/javascript' in output.get('data', {})
        for cell in saved.cells
        for output in cell.get('outputs', [])
    )
    token = tab.run('print(server.token)').strip()  # printed after the notebook was read
    assert len(token) > 20 and token not in json.dumps(saved)

    # The page calls the kernel from a cell's output and shows the answers there.
    cell = tab.start_cell('''
from IPython.display import HTML, display
display(HTML("""<div id="answers">waiting</div><script>
  const node = document.getElementById('answers');
  Promise.all([
    self.kernelChannel.call('multiply', 6, 7),
    self.kernelChannel.call('divide', 1, 0).catch((e) => [e.name, e.type, e.detail].join(' ')),
  ]).then((answers) => { node.textContent = 'answers ' + answers.join(', '); });
</script>"""))
''')
    tab.wait_cell(cell)
    assert (
        tab.wait_text('#answers', lambda text: text.startswith('answers'), 'answers')
        == 'answers 42, KernelError ZeroDivisionError division by zero'
    )
    # The notebook's author sees the handler's failure too, in the next cell run (the frontends
    # drop output of a cell that has finished): one warning with its traceback.
    shown = tab.run("print('next cell')")
    assert "the page's call 'divide' of channel" in shown and 'Traceback' in shown, shown
    assert shown.count('Traceback') == 1 and 'next cell' in shown
    assert 'Traceback' not in tab.run("print('and the one after')")


def test_reload_brings_the_client_back_and_fails_the_call_that_waited(tab: NotebookTab) -> None:
    port = start(tab)
    tab.run("waiting = channel.call('hang', 'before the reload', timeout=120)")
    tab.page.wait_for_function('self.hung === 1', timeout=60_000)
    saved = tab.save()
    assert '<script' not in saved_outputs_html(saved)

    tab.reload()
    # The notebook came back from the file: it shows the status line and runs nothing.
    tab.wait_text(STATUS, lambda text: 'connected' in text, 'the saved status line')
    assert tab.page.evaluate('typeof self.pageChannel') == 'undefined'
    assert requests_to(tab, port) == []  # the reloaded tab has not asked the server anything

    output = tab.run("""
print('again', json.dumps(await channel.call('indentLeft', 'back', 2, timeout=60)))
try:
    await waiting
except jchannel_http.StateError as error:
    print('waiting failed:', error)
""")
    assert 'again "  back"' in output
    assert WAITING_FAILED.search(output)
    assert any(url.endswith(f':{port}/client.js') for url in tab.requests)  # through the cell
    # The open code ran again in the new page, and the call that waited was not sent again.
    assert tab.page.evaluate('[typeof self.pageChannel, self.hung]') == ['object', 0]
    saved = tab.save()
    assert '<script' not in saved_outputs_html(saved)


def test_a_crashed_tab_is_replaced_by_a_new_one(tab: NotebookTab) -> None:
    start(tab, heartbeat=1)
    tab.run("waiting = channel.call('hang', 'before the crash', timeout=120)")
    tab.page.wait_for_function('self.hung === 1', timeout=60_000)
    tab.save()

    tab.reopen_after_crash()  # no goodbye from the crashed page: it stays live for 2 heartbeats
    # A call made while the crashed page still counts as live goes to it, and fails when it
    # is found gone; once it is gone, a call brings the new tab's client up through the cell.
    output = tab.run("""
for _ in range(100):
    if not server.status()['connected']:
        break
    await asyncio.sleep(0.1)
print('again', json.dumps(await channel.call('indentRight', 'new', 1, timeout=60)))
try:
    await waiting
except jchannel_http.StateError as error:
    print('waiting failed:', error)
""")
    assert 'again "new "' in output and WAITING_FAILED.search(output)
    assert tab.page.evaluate('self.hung') == 0


def test_kernel_restart_is_reported_and_a_new_start_connects_cleanly(tab: NotebookTab) -> None:
    old = start(tab)
    tab.restart_kernel()
    tab.wait_text(
        STATUS,
        lambda text: text.startswith(
            f'jchannel_http: lost the kernel server at http://127.0.0.1:{old}'
        ),
        'the page report',
    )

    new = start(tab)  # the new kernel process's bootstrap stops the old process's client
    tab.wait_text(
        STATUS,
        lambda text: text == f'jchannel_http: connected to http://127.0.0.1:{new}',
        'the new connection',
    )
    tab.wait_text(
        STATUS,
        lambda text: text == (f'jchannel_http: stopped the client of http://127.0.0.1:{old}'),
        'the old client stopped',
    )
    retries = len(requests_to(tab, old))
    tab.page.wait_for_timeout(3000)  # an old client still retrying would try again in this time
    assert len(requests_to(tab, old)) == retries


def test_stop_leaves_no_task_port_or_page_retry(tab: NotebookTab) -> None:
    output = tab.run(f"""
import asyncio, socket, threading
import jchannel_http

def transport():
    return {{thread.name for thread in threading.enumerate() if 'jchannel_http' in thread.name}}

def ours():
    files = [getattr(task.get_coro(), 'cr_code', None) for task in asyncio.all_tasks()]
    return {{task for task, code in zip(asyncio.all_tasks(), files)
            if code is not None and ('jchannel_http' in code.co_filename
                                     or 'aiohttp' in code.co_filename)}}

before = ours()
server = await jchannel_http.start()
channel = await server.open({PAGE_SIDE!r}, timeout=60)
await channel.call('indentLeft', 'x', 1)
print('transport while running', transport())
port = server.port
await server.stop()
for _ in range(100):
    left = ours() - before
    if not left:
        break
    await asyncio.sleep(0.05)
print('tasks left', left, 'threads left', transport())
try:
    socket.create_connection(('127.0.0.1', port), timeout=5).close()
except ConnectionRefusedError:
    print('refused')
with socket.socket() as probe:  # listening again works (closed connections may linger)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.bind(('127.0.0.1', port))
    probe.listen()
print('port free', port)
""")
    assert "transport while running {'jchannel_http transport'}" in output, output
    assert 'tasks left set() threads left set()' in output, output
    assert 'refused' in output
    found = re.search(r'port free (\d+)', output)
    assert found is not None, output
    port = int(found.group(1))
    stopped = f'jchannel_http: the server at http://127.0.0.1:{port} was stopped'
    tab.wait_text(STATUS, lambda text: text == stopped, 'the stopped status')
    requests = len(requests_to(tab, port))
    tab.page.wait_for_timeout(3000)  # a client still retrying would try again in this time
    assert len(requests_to(tab, port)) == requests


def test_the_local_example_runs_end_to_end(jupyter: JupyterServer, browser: Browser) -> None:
    tab = NotebookTab(jupyter, browser, 'local_example.ipynb', EXAMPLES / 'local.ipynb')
    try:
        outputs = tab.open().run_all()
        # Status lines change as the run goes on (the last cell stops the server). Under "run
        # all", the first open may come before the page connected: it shows the bootstrap again
        # in its own output, and a second status line is all that remains of it.
        status = re.compile(r"jchannel_http: [^\n']*?(http://127\.0\.0\.1:\d+)(?: was stopped)?\s*")
        matched = status.fullmatch(outputs[0])
        assert matched is not None, outputs[0]
        url = matched.group(1)
        outputs = [status.sub('', text) for text in outputs]
        # The handler's failure is shown in the cell whose call caused it, once, with its
        # traceback, next to the error the page passed back.
        divided = outputs[7]
        assert divided.endswith("'KernelError: ZeroDivisionError: division by zero'"), divided
        assert divided.count("the page's call 'divide' of channel 2 raised") == 1, divided
        assert divided.count('Traceback') == 1, divided
        outputs[7] = "'KernelError: ZeroDivisionError: division by zero'"
        assert outputs[1:] == [
            '',
            "'    hello'",
            "'world    '",
            'TypeError: line.padEnd is not a function\n',
            '',
            '42',
            "'KernelError: ZeroDivisionError: division by zero'",
            '6000',
            "'  again'",
            '',
        ]
        saved = tab.save()
        assert '<script' not in saved_outputs_html(saved)
        stopped = f'jchannel_http: the server at {url} was stopped'
        tab.wait_text(STATUS, lambda text: text == stopped, 'the stopped status')
    finally:
        tab.close()
        jupyter.shutdown_kernels()
