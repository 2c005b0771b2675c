"""Google Colab's proxy of kernel ports: ``tunnel='colab'``."""

from __future__ import annotations

import asyncio

from ..errors import TunnelError
from ..kernel.rpc import calls_in_flight

EVAL_JS_SLICE = 2.0
"""Most seconds one ``eval_js`` may block the kernel's event loop; a longer wait is asked again."""
IDLE_POLL = 0.05


class ColabLauncher:
    """Colab's own proxy of a kernel port: ``google.colab.kernel.proxyPort(<port>)``.

    The URL is asked of the notebook's page with ``google.colab.output.eval_js``, which blocks the
    kernel's event loop until the page answers; it works only while the notebook is open in a
    tab. So the wait is cut in slices of at most ``EVAL_JS_SLICE`` seconds (the loop runs between
    them), ``timeout`` seconds in all, and no slice starts while a call of any server of this
    process is in flight (its page would see a silent kernel meanwhile).
    """

    name = 'colab'

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.url: str | None = None

    async def start(self, port: int) -> str:
        try:
            from google.colab import output
        except ImportError as exc:
            raise TunnelError(
                "tunnel='colab' works only in Google Colab (google.colab cannot be "
                "imported here): elsewhere use tunnel='cloudflared' or 'ngrok'"
            ) from exc
        script = f'google.colab.kernel.proxyPort({int(port)})'
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        url = None
        while not url:
            # calls of every server in the process count: there is no one event to wait for
            while calls_in_flight() and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(IDLE_POLL)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                url = output.eval_js(script, timeout_sec=min(EVAL_JS_SLICE, remaining))
            except Exception as exc:
                raise TunnelError(f'the notebook page refused {script}: {exc}') from exc
            if not url:
                await asyncio.sleep(IDLE_POLL)  # let the loop run between slices
        if not url:
            raise TunnelError(
                f'the notebook page did not answer {script} within '
                f'{self.timeout:g} s: run the cell in a tab where the notebook '
                'is open, or raise tunnel_timeout'
            )
        if not isinstance(url, str) or not url.startswith(('https://', 'http://')):
            raise TunnelError(f'{script} answered {url!r}, which is not a URL')
        self.url = url
        return url

    async def stop(self) -> None:
        self.url = None  # the proxy stops answering once the server's port is closed
