"""Tunnel launchers: give the kernel server an address that the browser can reach.

A launcher is any object with ``async start(port) -> url`` and ``async stop()``. ``resolve()``
turns the ``tunnel=`` argument of ``start()`` into one:

===========================  ==================================================================
``None``                     no launcher: the browser uses ``http://host:port``
``'cloudflared'``            a cloudflared quick tunnel (``CloudflaredLauncher``)
``'ngrok'``                  the ngrok Python SDK (``NgrokLauncher``)
``'colab'``                  Google Colab's proxy of kernel ports (``ColabLauncher``)
``'jupyter-server-proxy'``   ``<base>proxy/<port>`` on the notebook's own server
``'auto'``                   what fits this environment (``choose_auto``), logged with the reason
any other object             used as it is, when it has ``start`` and ``stop``
===========================  ==================================================================

Every launcher raises TunnelError saying what is missing and how to fix it, and leaves nothing
running when ``start`` fails. ``open_tunnel`` and ``close_tunnel`` are what the server calls.
"""

from __future__ import annotations

from .choose import NAMES, AutoChoice, choose_auto, resolve
from .cloudflared import CloudflaredLauncher
from .colab import ColabLauncher
from .jupyter_server_proxy import JupyterServerProxyLauncher
from .launcher import Launcher, close_tunnel, open_tunnel
from .ngrok import NgrokLauncher

__all__ = [
    'NAMES',
    'AutoChoice',
    'CloudflaredLauncher',
    'ColabLauncher',
    'JupyterServerProxyLauncher',
    'Launcher',
    'NgrokLauncher',
    'choose_auto',
    'close_tunnel',
    'open_tunnel',
    'resolve',
]
