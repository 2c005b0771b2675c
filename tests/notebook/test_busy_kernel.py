"""The channel lives while a cell computes, in a real JupyterLab.

A cell that blocks the kernel's loop (a pure-Python loop, ``time.sleep``, a ``call_sync`` that
waits) leaves the transport running on its own thread: the page keeps its connection and
session, a ``@background`` handler answers it at once, ``call_sync`` reaches it from the
blocked cell, and the notebook's interrupt ends a ``call_sync`` that waits (the page's answer
that comes later is dropped). An ordinary handler waits for the cell to end, and then runs once.

One JupyterLab server serves the module; each test opens its own notebook, so its own kernel,
in a new Chromium tab, and shuts the kernel down at the end. ``/status`` is read by the test
itself over loopback, with the server's token, while the cells run.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from support.chromium import LAUNCH
from support.notebook_driver import CellError, JupyterServer, NotebookTab

pytestmark = pytest.mark.timeout(300)

PAGE_SIDE = """(channel) => {
  self.busyChannel = channel;
  self.shown = [];
  self.hung = 0;
  const panel = document.createElement('div');
  panel.id = 'busy-panel';
  panel.style.cssText = 'position: fixed; top: 0; right: 0; z-index: 100000;'
    + ' background: white; padding: 4px; border: 1px solid black';
  const button = document.createElement('button');
  button.id = 'busy-stop';
  button.textContent = 'stop the loop';
  button.addEventListener('click', () => {
    const clicked = performance.now();
    channel.call('stop').then(
      (answer) => { self.stopAnswer = [answer, performance.now() - clicked]; },
      (error) => { self.stopAnswer = ['failed', String(error)]; });
  });
  const shown = document.createElement('span');
  shown.id = 'busy-shown';
  shown.textContent = 'none';
  panel.append(button, shown);
  document.body.append(panel);
  channel.handler = {
    show(value) { shown.textContent = String(value); self.shown.push(value); return value; },
    hang() { self.hung += 1; return new Promise(() => {}); },
    add(a, b) { return a + b; },
    later(ms) {
      self.hung += 1;
      return new Promise((resolve) => setTimeout(() => {
        self.answeredLate = true;
        resolve('late');
      }, ms));
    },
  };
  return 'opened';
}"""

START = f"""
import asyncio, json, threading, time
import jchannel_http

class Handler:
    def __init__(self):
        self.flag = False
        self.stop_time = None
        self.stop_thread = None
        self.recorded = []

    @jchannel_http.background
    def stop(self):
        self.stop_time = time.monotonic()
        self.stop_thread = threading.current_thread().name
        self.flag = True
        return 'stopped'

    def record(self, label):
        self.recorded.append((label, time.time(), threading.current_thread().name))
        return label

server = await jchannel_http.start()
channel = await server.open({PAGE_SIDE!r}, timeout=60)
handler = channel.handler = Handler()
print('opened', json.dumps(await channel.call('add', 20, 22, timeout=60)))
print('port', server.port)
print('token', server.token)
"""


@pytest.fixture(scope='module')
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**LAUNCH)
        yield browser
        browser.close()


@pytest.fixture(scope='module')
def jupyter() -> Iterator[JupyterServer]:
    server = JupyterServer('lab').start()
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


class Kernel:
    """The kernel server started in a tab: its port and token, and its ``/status``."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token

    def status(self) -> dict[str, Any]:
        request = urllib.request.Request(
            f'http://127.0.0.1:{self.port}/status',
            headers={'Authorization': f'Bearer {self.token}'},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())


def start(tab: NotebookTab) -> Kernel:
    """Start a server in the tab's kernel and open the channel with the button and display."""
    output = tab.run(START)
    assert 'opened 42' in output, output
    port = re.search(r'port (\d+)', output)
    token = re.search(r'token (\S+)', output)
    assert port is not None and token is not None, output
    tab.page.wait_for_selector('#busy-stop', timeout=30_000)
    return Kernel(int(port.group(1)), token.group(1))


def connection(status: dict[str, Any]) -> tuple[Any, Any, Any]:
    """What must not change while a cell computes: transport, client and session."""
    assert status['connected'] is True, status
    assert status['transport'] and status['client'] and status['session'], status
    return status['transport'], status['client'], status['session']


def wait_output(tab: NotebookTab, index: int, text: str, timeout: float = 30) -> None:
    """Wait until the output of cell ``index`` (still running) shows ``text``."""
    deadline = time.monotonic() + timeout
    shown = ''
    while time.monotonic() < deadline:
        shown = tab.output_text(index)
        if text in shown:
            return
        tab.page.wait_for_timeout(50)
    raise AssertionError(f'cell {index} did not print {text!r} within {timeout} s: {shown!r}')


def running(tab: NotebookTab, index: int) -> bool:
    return not tab.page.evaluate(tab.scripts['done'], index)


def interrupt(jupyter: JupyterServer, tab: NotebookTab) -> None:
    """Interrupt the tab's kernel as the notebook's stop button does (a SIGINT to the kernel)."""
    sessions = [s for s in jupyter.api('GET', '/api/sessions') if s['path'].endswith(tab.name)]
    assert len(sessions) == 1, sessions
    jupyter.api('POST', f'/api/kernels/{sessions[0]["kernel"]["id"]}/interrupt')


def number(pattern: str, output: str) -> float:
    found = re.search(pattern, output)
    assert found is not None, (pattern, output)
    return float(found.group(1))


def test_a_background_handler_stops_a_pure_python_loop(tab: NotebookTab) -> None:
    kernel = start(tab)
    before = connection(kernel.status())

    cell = tab.start_cell("""
print('looping', flush=True)
t0 = time.monotonic()
while not handler.flag and time.monotonic() < t0 + 60:
    pass
end = time.monotonic()
print('ran', end - t0)
print('after click', end - handler.stop_time if handler.flag else None)
print('thread', handler.stop_thread)
""")
    wait_output(tab, cell, 'looping')
    tab.page.wait_for_timeout(3000)
    assert running(tab, cell)
    during = connection(kernel.status())  # answered while the kernel's thread loops
    assert running(tab, cell)
    tab.page.locator('#busy-stop').click()
    output = tab.wait_cell(cell, timeout=90)

    assert 'after click None' not in output, f'the loop ran its 60 s out: {output}'
    ran = number(r'ran ([\d.]+)', output)
    after = number(r'after click ([\d.e-]+)', output)
    assert 3 <= ran < 30, output
    assert 0 <= after < 1, output
    assert 'thread jchannel_http transport' in output, output
    answer = tab.page.evaluate('self.stopAnswer')
    assert answer[0] == 'stopped' and answer[1] < 5000, answer
    after_status = connection(kernel.status())
    assert before == during == after_status


def test_call_sync_updates_the_page_from_a_synchronous_loop(tab: NotebookTab) -> None:
    kernel = start(tab)
    before = connection(kernel.status())

    cell = tab.start_cell("""
print('showing', flush=True)
answers = []
for i in range(20):
    answers.append(channel.call_sync('show', i, timeout=10))
    time.sleep(0.1)
print('answers', json.dumps(answers))
""")
    wait_output(tab, cell, 'showing')
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while running(tab, cell) and time.monotonic() < deadline:
        text = tab.page.text_content('#busy-shown')
        if text is not None and (not seen or seen[-1] != text):
            seen.append(text)
        tab.page.wait_for_timeout(30)
    output = tab.wait_cell(cell, timeout=30)

    assert f'answers {json.dumps(list(range(20)))}' in output, output
    assert tab.page.evaluate('self.shown') == list(range(20))
    values = [int(text) for text in seen if text != 'none']
    assert len(set(values)) >= 5, f'the page showed too few values while the cell ran: {seen}'
    assert values == sorted(values), seen  # the display only moved forward
    assert connection(kernel.status()) == before


def test_interrupting_a_call_sync_leaves_the_channel_working(
    tab: NotebookTab, jupyter: JupyterServer
) -> None:
    kernel = start(tab)
    before = connection(kernel.status())

    cell = tab.start_cell("""
print('hanging', flush=True)
channel.call_sync('hang', timeout=None)
print('the call ' + 'returned')  # the source, shown in the traceback, differs
""")
    wait_output(tab, cell, 'hanging')
    tab.page.wait_for_function('self.hung === 1', timeout=30_000)
    tab.page.wait_for_timeout(500)
    assert running(tab, cell)
    during = connection(kernel.status())
    interrupted = time.monotonic()
    interrupt(jupyter, tab)
    with pytest.raises(CellError) as raised:
        tab.wait_cell(cell, timeout=30)
    assert time.monotonic() - interrupted < 20
    assert str(raised.value).startswith('KeyboardInterrupt'), raised.value
    assert 'the call returned' not in tab.output_text(cell)

    output = tab.run("""
print('async', json.dumps(await channel.call('add', 1, 2)))
print('sync', json.dumps(channel.call_sync('add', 2, 3)))
print('pending', server.status()['pending_calls'])
""")
    # the interrupted call was given up, not left waiting, and nothing was warned about
    assert output == 'async 3\nsync 5\npending 0\n', output
    assert tab.page.evaluate('self.hung') == 1  # and not sent again
    assert before == during == connection(kernel.status())


def test_an_ordinary_handler_waits_for_the_cell_and_runs_once(tab: NotebookTab) -> None:
    kernel = start(tab)
    before = connection(kernel.status())

    cell = tab.start_cell("""
print('blocking', flush=True)
time.sleep(4)
cell_end = time.time()
print('recorded during the cell', len(handler.recorded))
print('cell end', repr(cell_end))
""")
    wait_output(tab, cell, 'blocking')
    tab.page.evaluate("""() => {
        self.ordinaryAnswers = [];
        self.ordinarySent = Date.now();
        self.busyChannel.call('record', 'while busy').then(
            (answer) => { self.ordinaryAnswers.push([answer, Date.now()]); },
            (error) => { self.ordinaryAnswers.push(['failed ' + error, Date.now()]); });
    }""")
    tab.page.wait_for_timeout(500)
    assert running(tab, cell)
    assert tab.page.evaluate('self.ordinaryAnswers') == []  # not answered while the cell runs
    during = connection(kernel.status())
    output = tab.wait_cell(cell, timeout=60)
    assert 'recorded during the cell 0' in output, output
    cell_end = number(r'cell end ([\d.]+)', output)

    tab.page.wait_for_function('self.ordinaryAnswers.length > 0', timeout=30_000)
    tab.page.wait_for_timeout(1000)  # a second answer, or a second run, would come in this time
    answers = tab.page.evaluate('self.ordinaryAnswers')
    sent = tab.page.evaluate('self.ordinarySent')
    assert len(answers) == 1 and answers[0][0] == 'while busy', answers
    assert sent / 1000 < cell_end <= answers[0][1] / 1000 + 0.001, (sent, cell_end, answers)

    recorded = json.loads(tab.run('print(json.dumps(handler.recorded))'))
    assert len(recorded) == 1, recorded
    label, ran_at, thread = recorded[0]
    assert label == 'while busy' and ran_at >= cell_end, (recorded, cell_end)
    assert thread == 'MainThread', recorded  # on the kernel's own loop, not the transport's
    assert before == during == connection(kernel.status())


def test_an_answer_to_an_interrupted_call_sync_is_dropped(
    tab: NotebookTab, jupyter: JupyterServer
) -> None:
    kernel = start(tab)
    before = connection(kernel.status())
    cell = tab.start_cell("""
print('waiting', flush=True)
channel.call_sync('later', 3000, timeout=None)
""")
    wait_output(tab, cell, 'waiting')
    tab.page.wait_for_function('self.hung === 1', timeout=30_000)
    interrupt(jupyter, tab)
    with pytest.raises(CellError) as raised:
        tab.wait_cell(cell, timeout=30)
    assert str(raised.value).startswith('KeyboardInterrupt'), raised.value
    tab.page.wait_for_function('self.answeredLate === true', timeout=30_000)
    tab.page.wait_for_timeout(1000)  # the answer reaches the kernel, which has no caller for it
    output = tab.run("""
print('sync', json.dumps(channel.call_sync('add', 2, 3)))
print('pending', server.status()['pending_calls'])
""")
    assert output == 'sync 5\npending 0\n', output  # no warning about the late answer either
    assert tab.page.evaluate('self.hung') == 1
    assert before == connection(kernel.status())
