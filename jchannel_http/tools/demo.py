"""``python -m jchannel_http demo``: a server with a sample channel, until interrupted.

The page (``page_url``) gets buttons that call kernel methods, a log of the calls the kernel
makes into the page, and the server's live ``/status``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from ..errors import JChannelError
from ..kernel.channel import Channel
from ..server import Server

log = logging.getLogger('jchannel_http.demo')

PAGE_CODE = r"""
(channel) => {
  const app = document.getElementById('jchannel-app') || document.body;
  app.innerHTML = `
    <h2>Demo</h2>
    <p>
      <button id="demo-multiply">multiply(6, 7)</button>
      <button id="demo-divide">divide(1, 0)</button>
      <button id="demo-echo">echo</button>
    </p>
    <p>Kernel answered: <output id="demo-answer">-</output></p>
    <h3>Calls from the kernel</h3>
    <ol id="demo-log"></ol>`;
  const answer = document.getElementById('demo-answer');
  const run = async (promise) => {
    try {
      answer.textContent = JSON.stringify(await promise);
    } catch (error) {
      answer.textContent = error.name + ': ' + error.message;
    }
  };
  document.getElementById('demo-multiply').onclick = () => run(channel.call('multiply', 6, 7));
  document.getElementById('demo-divide').onclick = () => run(channel.call('divide', 1, 0));
  document.getElementById('demo-echo').onclick = () => run(channel.echo('ünïcode', 1.5, null, [], {}));
  const note = (text) => {
    const item = document.createElement('li');
    item.textContent = text;
    document.getElementById('demo-log').prepend(item);
    return text;
  };
  channel.handler = {
    indentLeft(line, count) { return note(line.padStart(line.length + count, '.')); },
    indentRight(line, count) { return note(line.padEnd(line.length + count, '.')); },
  };
  return 'demo ready';
}
"""


class DemoHandler:
    """The kernel object the page's buttons call."""

    def multiply(self, a: float, b: float) -> float:
        return a * b

    def divide(self, a: float, b: float) -> float:
        return a / b


async def run(host: str = '127.0.0.1', port: int = 8765, interval: float = 2.0) -> None:
    """Serve the demo until cancelled."""
    async with Server(host, port) as server:
        print(f'Open this address in a browser: {server.page_url}', flush=True)
        channel = Channel(server, PAGE_CODE, name='demo')
        channel.handler = DemoHandler()
        print(f'Try it with curl too: curl -X POST -H "Authorization: Bearer {server.token}" '
              f'-d "[6, 7]" {server.url}/channels/demo/call/multiply', flush=True)
        while True:
            try:
                print('page:', await channel.open(timeout=None), flush=True)
                break
            except JChannelError as exc:
                log.info('waiting for a page: %s', exc)
        for count in itertools.count(1):
            await asyncio.sleep(interval)
            method = 'indentLeft' if count % 2 else 'indentRight'
            try:
                print(f'kernel called {method}:', repr(await channel.call(method, f'call {count}', 4,
                                                                          deadline=30)), flush=True)
            except (JChannelError, TimeoutError) as exc:
                print(f'kernel call {count} failed: {exc}', flush=True)
