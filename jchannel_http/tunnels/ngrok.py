"""An ngrok tunnel: ``tunnel='ngrok'``."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ..errors import TunnelError


class NgrokLauncher:
    """An ngrok tunnel made by the ngrok Python SDK (``pip install ngrok``).

    The authtoken comes from ``NGROK_AUTHTOKEN``. ``options`` go to ``ngrok.forward`` as they
    are (for example ``domain='name.ngrok.app'``).
    """

    name = 'ngrok'

    def __init__(self, timeout: float = 30.0, **options: Any) -> None:
        self.timeout = timeout
        self.options = options
        self.url: str | None = None
        self._ngrok: Any = None
        self._closing: set[asyncio.Future[Any]] = set()

    async def start(self, port: int) -> str:
        try:
            import ngrok
        except ImportError as exc:
            raise TunnelError(
                "tunnel='ngrok' needs the ngrok package, which is not installed: pip install ngrok"
            ) from exc
        if not os.environ.get('NGROK_AUTHTOKEN'):
            raise TunnelError(
                "tunnel='ngrok' needs an authtoken in NGROK_AUTHTOKEN, which is not set: copy "
                'yours from the ngrok dashboard (Your Authtoken) and set it before start(), '
                "e.g. os.environ['NGROK_AUTHTOKEN'] = '...' or %env NGROK_AUTHTOKEN=..."
            )
        self._ngrok = ngrok
        forwarding = asyncio.ensure_future(
            asyncio.to_thread(
                ngrok.forward, f'127.0.0.1:{port}', authtoken_from_env=True, **self.options
            )
        )
        try:
            listener = await asyncio.wait_for(asyncio.shield(forwarding), self.timeout)
        except asyncio.TimeoutError:
            forwarding.add_done_callback(self._close_late)
            raise TunnelError(
                f'ngrok gave no URL within {self.timeout:g} s: check that this '
                'machine reaches the internet, or raise tunnel_timeout'
            ) from None
        except asyncio.CancelledError:
            forwarding.add_done_callback(self._close_late)
            raise
        except Exception as exc:
            raise TunnelError(
                f'ngrok refused to open the tunnel: {exc} (check NGROK_AUTHTOKEN '
                'and your account limits)'
            ) from exc
        self.url = listener.url()
        return self.url

    def _close_late(self, forwarding: asyncio.Future[Any]) -> None:
        """Close a listener that arrived after start() gave up waiting for it."""
        if not forwarding.cancelled() and forwarding.exception() is None:
            closing = asyncio.ensure_future(
                asyncio.to_thread(self._ngrok.disconnect, forwarding.result().url())
            )
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def stop(self) -> None:
        url, self.url = self.url, None
        if url is not None:
            await asyncio.to_thread(self._ngrok.disconnect, url)
