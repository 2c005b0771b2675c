"""The HTML of ``page_url``: a page whose tab becomes the client."""

from __future__ import annotations

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
<p>Client: <span id="jchannel-state">loading</span></p>
<div id="jchannel-app"></div>
<h2>Server status</h2>
<pre id="jchannel-status">...</pre>
<script src="client.js"></script>
<script>
(() => {
  const here = new URL(location.href);
  const token = here.searchParams.get('token') || sessionStorage.getItem('jchannel-token');
  sessionStorage.setItem('jchannel-token', token || '');
  here.searchParams.delete('token');
  history.replaceState(null, '', here.pathname + here.search + here.hash);
  const base = here.href.slice(0, here.href.lastIndexOf('/page'));
  const state = document.getElementById('jchannel-state');
  const show = (client) => {
    state.textContent = client.state + (client.lastError ? ' (' + client.lastError.message + ')' : '');
  };
  jchannel.start(base, { token, onstatechange: show }).then((client) => {
    window.jchannelClient = client;
    show(client);
  }, (error) => {
    state.textContent = 'failed (' + error.message + ')';
  });
  const statusBox = document.getElementById('jchannel-status');
  const poll = async () => {
    try {
      const response = await fetch(base + '/status', { headers: { Authorization: 'Bearer ' + token } });
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


def page_html() -> str:
    """The page served at ``/page``."""
    return PAGE
