"""Async RPC between a Jupyter kernel and its browser page over plain HTTP.

::

    server = await jchannel_http.start()
    channel = await server.open('(channel) => { channel.handler = {...}; }')
    result = await channel.call('method', 1, 2)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import types as types  # jupyter-jchannel's jchannel.types, as an attribute
from ._version import __version__
from .channel import Channel  # jupyter-jchannel's jchannel.channel, as an attribute
from .errors import (
    FrontendError,
    JChannelError,
    ListenError,
    ProtocolError,
    ResyncError,
    StateError,
    TunnelError,
)
from .kernel.background import background
from .kernel.meta_generator import MetaGenerator
from .kernel.progress import Progress, ProgressFeed, Source
from .options import Options
from .server import Server

if TYPE_CHECKING:
    from .tunnels import Launcher

__all__ = [
    'Channel',
    'FrontendError',
    'JChannelError',
    'ListenError',
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
    'background',
    'start',
]


async def start(
    host: str = '127.0.0.1',
    port: int = 0,
    url: str | None = None,
    heartbeat: float = 15,
    tunnel: str | Launcher | None = None,
    token: str | None = None,
    **options: Any,
) -> Server:
    """Start a kernel server and return it once it listens.

    In a notebook, the tab running the cell loads the client and connects; elsewhere one log
    line says which URL to open (``server.page_url``). ``tunnel`` (``'cloudflared'``,
    ``'ngrok'``, ``'colab'``, ``'jupyter-server-proxy'``, ``'auto'`` or a launcher object) makes
    the server reachable from elsewhere first; TunnelError says what is missing when it cannot.
    """
    server = Server(host, port, url, heartbeat, tunnel, token, **options)
    await server.start()
    return server
