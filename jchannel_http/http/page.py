"""The HTML of ``page_url``: a page whose tab becomes the client."""

from __future__ import annotations

import json
from typing import Any

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>jchannel_http</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
  #jchannel-state { font-weight: 600; }
  #jchannel-status { background: #f4f4f4; padding: .75rem; border-radius: 6px; font-size: 13px; }
</style>
</head>
<body>
<h1>jchannel_http</h1>
<p>Client: <span id="jchannel-state">loading</span>, transport: <span id="jchannel-transport">none yet</span>, sending with <span id="jchannel-send">POST</span></p>
<div id="jchannel-app"></div>
<h2>Server status</h2>
<pre id="jchannel-status">...</pre>
<script src="client.js"></script>
<script>
const OPTIONS = %(options)s;
(() => {
  const here = new URL(location.href);
  const token = here.searchParams.get('token') || sessionStorage.getItem('jchannel-token');
  sessionStorage.setItem('jchannel-token', token || '');
  here.searchParams.delete('token');
  history.replaceState(null, '', here.pathname + here.search + here.hash);
  const base = here.href.slice(0, here.href.lastIndexOf('/page'));
  const state = document.getElementById('jchannel-state');
  const transport = document.getElementById('jchannel-transport');
  const send = document.getElementById('jchannel-send');
  const show = (client) => {
    state.textContent = client.state + (client.lastError ? ' (' + client.lastError.message + ')' : '');
    transport.textContent = client.transport;
    send.textContent = client.sendMethod.toUpperCase();
  };
  jchannel.start(base, { ...OPTIONS, token, onstatechange: show }).then((client) => {
    window.jchannelClient = client;
    show(client);
  }, (error) => {
    state.textContent = 'failed (' + error.message + ')';
  });
  const statusBox = document.getElementById('jchannel-status');
  const poll = async () => {
    try {
      const headers = { Authorization: 'Bearer ' + token, 'ngrok-skip-browser-warning': '1' };
      const response = await fetch(base + '/status', { headers });
      statusBox.textContent = JSON.stringify(await response.json(), null, 2);
    } catch (error) {
      statusBox.textContent = String(error);
    }
  };
  poll();
  setInterval(poll, 1000);
})();
</script>
</body>
</html>
"""


def page_html(options: dict[str, Any] | None = None) -> str:
    """The page served at ``/page``; ``options`` (JSON) are given to ``jchannel.start``."""
    script_safe = json.dumps(options or {}).replace('<', '\\u003c')
    return PAGE.replace('%(options)s', script_safe)
