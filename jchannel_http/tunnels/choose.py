"""From the ``tunnel=`` argument to a launcher: a name, ``'auto'``, or an object."""

from __future__ import annotations

import dataclasses
import logging
import os

from .cloudflared import CloudflaredLauncher
from .colab import ColabLauncher
from .jupyter_server_proxy import JupyterServerProxyLauncher
from .launcher import Launcher, installed
from .ngrok import NgrokLauncher

log = logging.getLogger('jchannel_http')

NAMES = ('auto', 'cloudflared', 'colab', 'jupyter-server-proxy', 'ngrok')


@dataclasses.dataclass(frozen=True)
class AutoChoice:
    """What ``tunnel='auto'`` chose and why; ``doubtful`` when the page may not reach it."""

    launcher: Launcher | None
    reason: str
    doubtful: bool = False

    @property
    def name(self) -> str:
        return getattr(self.launcher, 'name', 'no tunnel')


def choose_auto(timeout: float = 30.0) -> AutoChoice:
    """The launcher that fits this environment: Colab, then JupyterHub/Binder, else none."""
    if installed('google.colab'):
        return AutoChoice(
            ColabLauncher(timeout), 'google.colab can be imported, so this is Google Colab'
        )
    prefix = os.environ.get('JUPYTERHUB_SERVICE_PREFIX')
    if prefix and installed('jupyter_server_proxy'):
        return AutoChoice(
            JupyterServerProxyLauncher(),
            f'JUPYTERHUB_SERVICE_PREFIX={prefix} (JupyterHub or Binder) and '
            'jupyter-server-proxy is installed',
        )
    if prefix:
        return AutoChoice(
            None,
            (
                f'JUPYTERHUB_SERVICE_PREFIX={prefix} (JupyterHub or Binder) but jupyter-server-proxy '
                'is not installed, so the browser probably cannot reach this server: pip install '
                "jupyter-server-proxy and restart the Jupyter server, or use tunnel='cloudflared'"
            ),
            doubtful=True,
        )
    return AutoChoice(
        None,
        'neither Google Colab nor JupyterHub/Binder: the browser reaches the server at host:port',
    )


def resolve(
    tunnel: object, timeout: float = 30.0, cloudflared_path: str | None = None
) -> Launcher | None:
    """The launcher for a ``tunnel=`` value (see the module docstring), or None for none."""
    if tunnel is None:
        return None
    if isinstance(tunnel, str):
        if tunnel == 'auto':
            choice = choose_auto(timeout)
            log.log(
                logging.WARNING if choice.doubtful else logging.INFO,
                "tunnel='auto' chose %s: %s",
                choice.name,
                choice.reason,
            )
            return choice.launcher
        if tunnel == 'cloudflared':
            return CloudflaredLauncher(cloudflared_path, timeout)
        if tunnel == 'ngrok':
            return NgrokLauncher(timeout)
        if tunnel == 'colab':
            return ColabLauncher(timeout)
        if tunnel == 'jupyter-server-proxy':
            return JupyterServerProxyLauncher()
        raise ValueError(
            f'unknown tunnel {tunnel!r}: use None, one of {list(NAMES)}, or an '
            'object with async start(port) -> url and async stop()'
        )
    if callable(getattr(tunnel, 'start', None)) and callable(getattr(tunnel, 'stop', None)):
        return tunnel  # type: ignore[return-value]
    raise TypeError(
        f'tunnel={tunnel!r} is neither a name in {list(NAMES)} nor an object with '
        'async start(port) -> url and async stop()'
    )
