"""Bringing the client into the notebook tab, through the running cell's output.

In a notebook, the kernel server shows a *bootstrap*: an HTML output whose script loads
``<url>/client.js`` from the kernel server and starts the client. It is an HTML output rather
than a ``Javascript`` one because every frontend runs scripts in HTML outputs (JupyterLab,
Notebook 7 and NbClassic for outputs of the running session, VS Code always), while VS Code
ignores ``Javascript`` outputs.

The bootstrap carries the server's token, so it must not stay in the saved notebook: it is shown
with a ``display_id`` and replaced, as soon as a page connects or the server stops, by one line of
status text with no script. The line keeps a ``data-jchannel-http`` attribute naming the server,
through which the running client reports what happens later (a lost server after a kernel
restart, for example) in the same place.

A bootstrap names the Jupyter kernel (stable across restarts) and this kernel process (new at
each restart): when a kernel's new process starts a server, the page stops the clients that an
earlier process of the same kernel left retrying.
"""

from __future__ import annotations

import html
import os
import secrets
from typing import Any

import orjson

PROCESS = secrets.token_hex(8)
"""Identifies this kernel process among the restarts of one Jupyter kernel."""

ATTRIBUTE = 'data-jchannel-http'

_SCRIPT = """(() => {
  const url = %(url)s, token = %(token)s, kernel = %(kernel)s, process = %(process)s;
  const options = %(options)s;
  const report = (text) => {
    for (const node of document.querySelectorAll('[%(attribute)s]')) {
      if (node.getAttribute('%(attribute)s') === url) node.textContent = text;
    }
  };
  const describe = (client) => {
    const why = client.lastError ? ' (' + client.lastError.message + ')' : '';
    switch (client.state) {
      case 'connected': return 'jchannel_http: connected to ' + url;
      case 'reconnecting': return 'jchannel_http: lost the kernel server at ' + url + why +
        ', retrying; if the kernel restarted, run start() again';
      case 'stopped': return 'jchannel_http: stopped the client of ' + url;
      case 'failed': return 'jchannel_http: cannot connect to ' + url + why;
      default: return 'jchannel_http: connecting to ' + url + why;
    }
  };
  const load = () => new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = url + '/client.js';
    script.onload = resolve;
    script.onerror = () => reject(new Error('cannot load ' + script.src +
      ': is the kernel server running and reachable from this browser?'));
    document.head.appendChild(script);
  });
  const start = async () => {
    if (globalThis.jchannel === undefined) await load();
    const owners = (globalThis.jchannelHttpOwners ??= new Map());
    for (const [other, owner] of owners) {
      if (owner.kernel === kernel && owner.process !== process) {
        owners.delete(other);
        globalThis.jchannel.stop(other);
      }
    }
    owners.set(url, { kernel, process });
    const onstatechange = (client) => report(describe(client));
    report(describe(await globalThis.jchannel.start(url, { ...options, token, onstatechange })));
  };
  start().catch((error) => {
    report('jchannel_http: ' + error.message);
    console.error('jchannel_http:', error);
  });
})();"""


def in_notebook() -> bool:
    """Whether this code runs in an IPython kernel attached to a frontend."""
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, 'kernel', None) is not None


def kernel_name() -> str:
    """The Jupyter kernel this process runs for: its connection file, which restarts keep."""
    try:
        from ipykernel.connect import get_connection_file

        return os.path.basename(get_connection_file())
    except Exception:  # noqa: BLE001 (no ipykernel, or no connection file: every process counts as its own kernel)
        return PROCESS


def _js(value: Any) -> str:
    """``value`` as a JavaScript literal that cannot end the script element."""
    text = orjson.dumps(value).decode()
    return text.replace('<', '\\u003c').replace('>', '\\u003e').replace('&', '\\u0026')


def bootstrap_script(
    url: str, token: str, options: dict[str, Any], kernel: str, process: str = PROCESS
) -> str:
    """The JavaScript that loads ``<url>/client.js`` once and starts the client for ``url``.

    ``options`` go to ``jchannel.start`` (see ``Server.client_options``).
    """
    return _SCRIPT % {
        'url': _js(url),
        'token': _js(token),
        'options': _js(options),
        'kernel': _js(kernel),
        'process': _js(process),
        'attribute': ATTRIBUTE,
    }


def status_line(url: str, text: str) -> dict[str, str]:
    """An inert output: ``text`` in an element the running client updates, and as plain text."""
    line = f'<div {ATTRIBUTE}="{html.escape(url)}">{html.escape(text)}</div>'
    return {'text/html': line, 'text/plain': text}


def bootstrap_output(
    url: str, token: str, options: dict[str, Any], kernel: str, process: str = PROCESS
) -> dict[str, str]:
    """The bootstrap: a status line and the script that connects the page."""
    data = status_line(url, f'jchannel_http: connecting to {url}')
    script = bootstrap_script(url, token, options, kernel, process)
    data['text/html'] += f'\n<script>\n{script}\n</script>'
    return data


def _current_execution() -> str | None:
    """The message id of the request the kernel is running (the cell), if any."""
    from IPython.core.getipython import get_ipython

    shell = get_ipython()
    header: Any = getattr(shell, 'parent_header', None) or {}
    msg_id: str | None = header.get('msg_id') or header.get('header', {}).get('msg_id')
    return msg_id


class NotebookOutput:
    """The bootstraps one server showed in cell outputs, until each is replaced by status text."""

    def __init__(self, url: str, token: str, options: dict[str, Any]) -> None:
        self.url = url
        self.token = token
        self.options = options
        self.kernel = kernel_name()
        self._pending: dict[str, str | None] = {}  # display id -> execution that showed it
        self._settled: list[str] = []

    @property
    def pending(self) -> int:
        """Bootstraps shown and not yet replaced."""
        return len(self._pending)

    def show(self) -> None:
        """Show the bootstrap in the running cell's output, once per cell while it is pending."""
        from IPython.display import display

        execution = _current_execution()
        if execution is not None and execution in self._pending.values():
            return
        display_id = f'jchannel-http-{secrets.token_hex(8)}'
        display(
            bootstrap_output(self.url, self.token, self.options, self.kernel),
            raw=True,
            display_id=display_id,
        )
        self._pending[display_id] = execution

    def settle(self, text: str) -> None:
        """Replace every pending bootstrap by the inert status line ``text``."""
        pending, self._pending = list(self._pending), {}
        self._settled.extend(pending)
        self._update(pending, text)

    def close(self, text: str) -> None:
        """Replace every output this server showed, pending or not, by ``text``."""
        shown = [*self._pending, *self._settled]
        self._pending, self._settled = {}, []
        self._update(shown, text)

    def _update(self, display_ids: list[str], text: str) -> None:
        if not display_ids:
            return
        from IPython.display import update_display

        for display_id in display_ids:
            update_display(status_line(self.url, text), raw=True, display_id=display_id)
