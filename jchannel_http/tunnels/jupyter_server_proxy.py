"""The notebook server's own proxy: ``tunnel='jupyter-server-proxy'``."""

from __future__ import annotations

import os

from ..errors import TunnelError
from .launcher import installed


class JupyterServerProxyLauncher:
    """The notebook server's own ``<base>proxy/<port>`` (the jupyter-server-proxy extension).

    The URL has no scheme or host: the page resolves it against the notebook's address, and
    Jupyter authenticates it with its cookie. ``base`` defaults to ``JUPYTERHUB_SERVICE_PREFIX``
    (JupyterHub and Binder set it), else ``/``; pass the server's ``base_url`` when it has one.
    """

    name = 'jupyter-server-proxy'

    def __init__(self, base: str | None = None) -> None:
        self.base = base
        self.url: str | None = None

    async def start(self, port: int) -> str:
        if not installed('jupyter_server_proxy'):
            raise TunnelError(
                "tunnel='jupyter-server-proxy' needs the jupyter-server-proxy extension, which "
                'is not installed: pip install jupyter-server-proxy in the environment of the '
                "Jupyter server, then restart that server (or use tunnel='cloudflared')"
            )
        base = self.base or os.environ.get('JUPYTERHUB_SERVICE_PREFIX') or '/'
        base = '/' + base.strip('/') + '/' if base.strip('/') else '/'
        self.url = f'{base}proxy/{int(port)}'
        return self.url

    async def stop(self) -> None:
        self.url = None  # the proxy answers 502 once the server's port is closed
