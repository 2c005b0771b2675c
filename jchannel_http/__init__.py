"""Async RPC between a Jupyter kernel and its browser page over plain HTTP.

::

    server = await jchannel_http.start()
    channel = await server.open('(channel) => { channel.handler = {...}; }')
    result = await channel.call('method', 1, 2)
"""

from __future__ import annotations

from typing import Any

__version__ = '0.1.0'

from .kernel.channel import Channel  # noqa: E402
from .errors import (  # noqa: E402
    FrontendError,
    JChannelError,
    ProtocolError,
    ResyncError,
    StateError,
    TunnelError,
)
from .kernel.meta_generator import MetaGenerator  # noqa: E402
from .options import Options  # noqa: E402
from .kernel.progress import Progress, ProgressFeed, Source  # noqa: E402
from .server import Server  # noqa: E402
from . import types as types  # noqa: E402  (jupyter-jchannel's jchannel.types, as an attribute)

__all__ = [
    'Channel',
    'FrontendError',
    'JChannelError',
    'MetaGenerator',
    'Options',
    'Progress',
    'ProgressFeed',
    'ProtocolError',
    'ResyncError',
    'Server',
    'Source',
    'StateError',
    'TunnelError',
    '__version__',
    'start',
]


async def start(host: str = '127.0.0.1', port: int = 0, url: str | None = None,
                heartbeat: float = 15, tunnel: object = None, token: str | None = None,
                **options: Any) -> Server:
    """Start a kernel server and return it once it listens.

    In a notebook, the tab running the cell loads the client and connects; elsewhere one log
    line says which URL to open (``server.page_url``). ``tunnel`` (``'cloudflared'``,
    ``'ngrok'``, ``'colab'``, ``'jupyter-server-proxy'``, ``'auto'`` or a launcher object) makes
    the server reachable from elsewhere first; TunnelError says what is missing when it cannot.
    """
    server = Server(host, port, url, heartbeat, tunnel, token, **options)
    await server.start()
    return server
